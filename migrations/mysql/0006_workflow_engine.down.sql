DROP TABLE user_profiles;
DROP TABLE workflow_events;
DROP TABLE workflow_steps;
ALTER TABLE workflow_runs
    DROP KEY workflow_runs_name_status,
    DROP KEY workflow_runs_parent,
    DROP KEY workflow_runs_due,
    DROP COLUMN spend,
    DROP COLUMN waiting,
    DROP COLUMN lease_owner,
    DROP COLUMN due_at,
    DROP COLUMN version,
    DROP COLUMN parent_id;

CREATE TABLE task_runs (
    run_id      CHAR(36)     NOT NULL,
    name        VARCHAR(200) NOT NULL,
    status      VARCHAR(16)  NOT NULL,
    attempts    INT          NOT NULL DEFAULT 0,
    input       JSON         NULL,
    output      JSON         NULL,
    error       TEXT         NOT NULL,
    started_at  DATETIME(6)  NULL,
    finished_at DATETIME(6)  NULL,
    updated_at  DATETIME(6)  NOT NULL,
    PRIMARY KEY (run_id, name),
    CONSTRAINT task_runs_run_fk FOREIGN KEY (run_id) REFERENCES workflow_runs (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
