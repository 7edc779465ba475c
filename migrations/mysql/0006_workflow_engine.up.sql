-- The workflow engine: a run row is the run grain's snapshot (version CAS), with the
-- recovery schedule in due_at; workflow_steps is the journal, unique per (run_id, seq);
-- workflow_events is the run's ordered event log (SSE, attempts counted across crashes).
-- task_runs was never written and is replaced by workflow_steps.

DROP TABLE task_runs;

-- due_at: when a node must look at the run if nobody renews it: the lease expiry while it
-- executes, the wake-up time while it sleeps, now for a new or retried run; NULL when it
-- waits for input or has finished. Recovery reads only due_at <= now (indexed).
ALTER TABLE workflow_runs
    ADD COLUMN parent_id   CHAR(36)    NULL,
    ADD COLUMN version     BIGINT      NOT NULL DEFAULT 0,
    ADD COLUMN due_at      DATETIME(6) NULL,
    ADD COLUMN lease_owner VARCHAR(64) NOT NULL DEFAULT '',
    ADD COLUMN waiting     JSON        NULL,
    ADD COLUMN spend     JSON        NULL,
    ADD KEY workflow_runs_due (due_at),
    ADD KEY workflow_runs_parent (parent_id),
    -- Concurrency caps count a workflow's runs in progress (per owner too).
    ADD KEY workflow_runs_name_status (name, status, owner_id);

CREATE TABLE workflow_steps (
    run_id      CHAR(36)     NOT NULL,
    seq         INT          NOT NULL,
    name        VARCHAR(200) NOT NULL,
    kind        VARCHAR(16)  NOT NULL,
    status      VARCHAR(16)  NOT NULL,
    output      JSON         NULL,
    error       TEXT         NOT NULL,
    attempts    INT          NOT NULL DEFAULT 0,
    spend     JSON         NULL,
    cache_hit   TINYINT(1)   NOT NULL DEFAULT 0,
    wake_at     DATETIME(6)  NULL,
    started_at  DATETIME(6)  NULL,
    finished_at DATETIME(6)  NULL,
    PRIMARY KEY (run_id, seq),
    CONSTRAINT workflow_steps_run_fk FOREIGN KEY (run_id) REFERENCES workflow_runs (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE workflow_events (
    run_id     CHAR(36)    NOT NULL,
    seq        BIGINT      NOT NULL,
    step_seq   INT         NOT NULL DEFAULT 0,
    status     VARCHAR(16) NOT NULL,
    attempt    INT         NOT NULL DEFAULT 0,
    data       JSON        NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (run_id, seq),
    CONSTRAINT workflow_events_run_fk FOREIGN KEY (run_id) REFERENCES workflow_runs (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The small JSON profile per user that the intelligent-chat workflow keeps.
CREATE TABLE user_profiles (
    user_id    CHAR(36)    NOT NULL,
    profile    JSON        NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id),
    CONSTRAINT user_profiles_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
