-- A completed task's events that commit with its journal row are kept in that row
-- instead of as rows of workflow_events, so a task costs one row rather than three.
-- events holds them as a JSON array of {seq, status, attempt, data, created_at},
-- last_event_seq the highest seq among them (0: none). The event log reads both tables.
ALTER TABLE workflow_steps ADD COLUMN events TEXT NULL;
ALTER TABLE workflow_steps ADD COLUMN last_event_seq INTEGER NOT NULL DEFAULT 0;
