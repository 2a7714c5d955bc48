-- A work item is open until its final event sets completed_at, so the open
-- index keys on that column rather than on state: SQLite then rewrites the
-- index entry only at the final update, not at every lifecycle step. The
-- id makes the index serve the (enqueued_at, id) keyset of recovery.
DROP INDEX work_items_open;
CREATE INDEX work_items_open ON work_items (enqueued_at, id) WHERE completed_at IS NULL;
