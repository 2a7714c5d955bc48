-- A work item is open until its final event sets completed_at, so the open
-- index can key on that column rather than on state. State changes with
-- every lifecycle step; an index whose predicate names it makes every such
-- UPDATE a non-HOT one, writing a new entry into every index of the table.
-- With the predicate on completed_at, only the final update touches the
-- indexes, and the free space fillfactor leaves on each page lets the
-- others stay on their page (heap-only tuples).
DROP INDEX work_items_open;
CREATE INDEX work_items_open ON work_items (enqueued_at, id) WHERE completed_at IS NULL;
ALTER TABLE work_items SET (fillfactor = 70);
