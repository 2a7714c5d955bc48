-- Instructions for the bridge (an overflow, a disconnect, voicemail, a
-- callback) given while no bridge session was open, so that a restart does
-- not lose them: one row per work item, its latest, deleted once a bridge
-- session has received it.
CREATE TABLE unsent_instructions (
    work_item_id TEXT PRIMARY KEY REFERENCES work_items (id),
    at BIGINT NOT NULL,
    instruction TEXT NOT NULL
);
