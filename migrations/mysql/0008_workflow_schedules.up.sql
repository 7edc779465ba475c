-- Workflow schedules and webhook notifications.
-- A schedule's pending tick is next_fire_at; due_at is when a node must look at it:
-- next_fire_at, or the expiry of a node's claim on the tick (a claimed tick whose node
-- died is due again then). Nodes read only due_at <= now (indexed) and claim with a
-- compare-and-swap on version. NULL due_at: disabled.
CREATE TABLE workflow_schedules (
    id            CHAR(36)      NOT NULL,
    owner_id      CHAR(36)      NOT NULL,
    workflow      VARCHAR(200)  NOT NULL,
    parameters    JSON          NOT NULL,
    spec          VARCHAR(200)  NOT NULL,
    timezone      VARCHAR(64)   NOT NULL DEFAULT 'UTC',
    catch_up      VARCHAR(16)   NOT NULL DEFAULT 'skip',
    webhook_url   VARCHAR(2048) NOT NULL DEFAULT '',
    enabled       BOOLEAN       NOT NULL DEFAULT TRUE,
    next_fire_at  DATETIME(6)   NULL,
    due_at        DATETIME(6)   NULL,
    claim_owner   VARCHAR(64)   NOT NULL DEFAULT '',
    version       BIGINT        NOT NULL DEFAULT 1,
    last_fired_at DATETIME(6)   NULL,
    last_run_id   CHAR(36)      NOT NULL DEFAULT '',
    last_error    TEXT          NOT NULL,
    created_at    DATETIME(6)   NOT NULL,
    updated_at    DATETIME(6)   NOT NULL,
    PRIMARY KEY (id),
    KEY workflow_schedules_due (due_at),
    KEY workflow_schedules_owner_created (owner_id, created_at, id),
    CONSTRAINT workflow_schedules_owner_fk FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The notification target of a run (empty: none).
ALTER TABLE workflow_runs
    ADD COLUMN webhook_url VARCHAR(2048) NOT NULL DEFAULT '',
    -- kowai_workflow_runs counts the open runs by status.
    ADD KEY workflow_runs_status (status);

-- One row per webhook delivery attempt of a finished run.
CREATE TABLE webhook_deliveries (
    run_id      CHAR(36)    NOT NULL,
    attempt     INT         NOT NULL,
    status_code INT         NOT NULL DEFAULT 0,
    error       TEXT        NOT NULL,
    delivered   BOOLEAN     NOT NULL DEFAULT FALSE,
    at          DATETIME(6) NOT NULL,
    PRIMARY KEY (run_id, attempt),
    CONSTRAINT webhook_deliveries_run_fk FOREIGN KEY (run_id) REFERENCES workflow_runs (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The webhook notification of a finished run: written in the transaction that
-- finishes the run (so it survives any crash), claimed by nodes with a version CAS
-- when next_at has passed (indexed), NULL once delivered or given up.
CREATE TABLE webhook_notifications (
    run_id     CHAR(36)      NOT NULL,
    url        VARCHAR(2048) NOT NULL,
    status     VARCHAR(16)   NOT NULL,
    attempts   INT           NOT NULL DEFAULT 0,
    next_at    DATETIME(6)   NULL,
    version    BIGINT        NOT NULL DEFAULT 1,
    updated_at DATETIME(6)   NOT NULL,
    PRIMARY KEY (run_id),
    KEY webhook_notifications_next (next_at),
    CONSTRAINT webhook_notifications_run_fk FOREIGN KEY (run_id) REFERENCES workflow_runs (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
