-- The events kept in journal rows are lost with their columns.
ALTER TABLE workflow_steps DROP COLUMN last_event_seq;
ALTER TABLE workflow_steps DROP COLUMN events;
