DROP TABLE user_profiles;
DROP TABLE workflow_events;
DROP TABLE workflow_steps;
DROP INDEX IF EXISTS workflow_runs_name_status;
DROP INDEX IF EXISTS workflow_runs_parent;
DROP INDEX IF EXISTS workflow_runs_due;
ALTER TABLE workflow_runs DROP COLUMN spend;
ALTER TABLE workflow_runs DROP COLUMN waiting;
ALTER TABLE workflow_runs DROP COLUMN lease_owner;
ALTER TABLE workflow_runs DROP COLUMN due_at;
ALTER TABLE workflow_runs DROP COLUMN version;
ALTER TABLE workflow_runs DROP COLUMN parent_id;

CREATE TABLE task_runs (
    run_id      TEXT     NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    name        TEXT     NOT NULL,
    status      TEXT     NOT NULL,
    attempts    INTEGER  NOT NULL DEFAULT 0,
    input       TEXT     NULL CHECK (input IS NULL OR json_valid(input)),
    output      TEXT     NULL CHECK (output IS NULL OR json_valid(output)),
    error       TEXT     NOT NULL,
    started_at  DATETIME NULL,
    finished_at DATETIME NULL,
    updated_at  DATETIME NOT NULL,
    PRIMARY KEY (run_id, name)
);
