-- Drops the initial kowai schema, children before parents.

DROP TABLE IF EXISTS audit_log;
DROP TABLE IF EXISTS task_runs;
DROP TABLE IF EXISTS workflow_runs;
DROP TABLE IF EXISTS snapshots;
DROP TABLE IF EXISTS feedback;
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS conversations;
DROP TABLE IF EXISTS agents;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS auth_sessions;
DROP TABLE IF EXISTS users;
