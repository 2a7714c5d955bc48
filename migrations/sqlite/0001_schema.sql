-- Switchboard schema for SQLite. Times are milliseconds since the Unix epoch.

CREATE TABLE skills (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE queues (
    id TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    strategy TEXT NOT NULL,
    priority BIGINT NOT NULL,
    priority_aging_secs BIGINT,
    sl_voice_secs BIGINT NOT NULL,
    sl_chat_secs BIGINT NOT NULL,
    sl_video_secs BIGINT NOT NULL,
    sl_target DOUBLE PRECISION NOT NULL,
    offer_timeout_secs BIGINT NOT NULL,
    wrap_up_secs BIGINT NOT NULL,
    max_no_answer BIGINT NOT NULL,
    reoffer_delay_secs BIGINT NOT NULL,
    max_waiting BIGINT,
    max_wait_secs BIGINT,
    when_full_kind TEXT,
    when_full_queue TEXT REFERENCES queues (id),
    when_full_message TEXT,
    when_max_wait_kind TEXT,
    when_max_wait_queue TEXT REFERENCES queues (id),
    when_max_wait_message TEXT,
    when_no_agents_kind TEXT,
    when_no_agents_queue TEXT REFERENCES queues (id),
    when_no_agents_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE queue_steps (
    queue_id TEXT NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    match_language BOOLEAN NOT NULL,
    duration_secs BIGINT,
    PRIMARY KEY (queue_id, position)
);

CREATE TABLE queue_step_requirements (
    queue_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    ordinal BIGINT NOT NULL,
    skill TEXT NOT NULL REFERENCES skills (name),
    min_level BIGINT NOT NULL,
    PRIMARY KEY (queue_id, position, ordinal),
    FOREIGN KEY (queue_id, position) REFERENCES queue_steps (queue_id, position) ON DELETE CASCADE
);
CREATE INDEX queue_step_requirements_skill ON queue_step_requirements (skill);

CREATE TABLE entry_points (
    address TEXT PRIMARY KEY,
    queue_id TEXT NOT NULL REFERENCES queues (id),
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX entry_points_queue ON entry_points (queue_id);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    uc_address TEXT NOT NULL,
    kind TEXT NOT NULL,
    capacity_voice BIGINT NOT NULL,
    capacity_chat BIGINT NOT NULL,
    capacity_video BIGINT NOT NULL,
    chat_during_calls BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE agent_skills (
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    skill TEXT NOT NULL REFERENCES skills (name),
    level BIGINT NOT NULL,
    PRIMARY KEY (agent_id, ordinal)
);
CREATE INDEX agent_skills_skill ON agent_skills (skill);

CREATE TABLE agent_queues (
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    queue_id TEXT NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, ordinal)
);
CREATE INDEX agent_queues_queue ON agent_queues (queue_id);

-- One row per work item (routing segment of an interaction), with its
-- current state and the timestamps reports are computed from.
CREATE TABLE work_items (
    id TEXT PRIMARY KEY,
    interaction_id TEXT NOT NULL,
    segment BIGINT NOT NULL,
    channel TEXT NOT NULL,
    from_address TEXT NOT NULL,
    to_address TEXT NOT NULL,
    display_name TEXT NOT NULL,
    entry_point TEXT,
    language TEXT,
    attributes TEXT NOT NULL,
    required_skills TEXT NOT NULL,
    priority BIGINT NOT NULL,
    is_transfer BOOLEAN NOT NULL,
    first_queue TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    state TEXT NOT NULL,
    agent_id TEXT,
    arrived_at BIGINT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    answered_at BIGINT,
    connected_at BIGINT,
    ended_at BIGINT,
    completed_at BIGINT,
    outcome TEXT,
    UNIQUE (interaction_id, segment)
);
CREATE INDEX work_items_open ON work_items (enqueued_at) WHERE state IN ('waiting', 'offered', 'answered', 'connected', 'wrap_up');
CREATE INDEX work_items_arrived ON work_items (arrived_at);

-- Every lifecycle transition of every work item, in order.
CREATE TABLE work_item_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    work_item_id TEXT NOT NULL REFERENCES work_items (id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    queue_id TEXT,
    agent_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX work_item_events_item ON work_item_events (work_item_id, id);
CREATE INDEX work_item_events_at ON work_item_events (at);

-- Every routing-state change of every agent.
CREATE TABLE agent_state_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX agent_state_history_agent ON agent_state_history (agent_id, at);

-- Supervisor actions and configuration changes: what, who and when.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
