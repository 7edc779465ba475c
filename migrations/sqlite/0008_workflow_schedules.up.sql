-- Workflow schedules and webhook notifications.
-- A schedule's pending tick is next_fire_at; due_at is when a node must look at it:
-- next_fire_at, or the expiry of a node's claim on the tick (a claimed tick whose node
-- died is due again then). Nodes read only due_at <= now (indexed) and claim with a
-- compare-and-swap on version. NULL due_at: disabled.
CREATE TABLE workflow_schedules (
    id            TEXT     NOT NULL PRIMARY KEY,
    owner_id      TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workflow      TEXT     NOT NULL,
    parameters    TEXT     NOT NULL CHECK (json_valid(parameters)),
    spec          TEXT     NOT NULL,
    timezone      TEXT     NOT NULL DEFAULT 'UTC',
    catch_up      TEXT     NOT NULL DEFAULT 'skip',
    webhook_url   TEXT     NOT NULL DEFAULT '',
    enabled       INTEGER  NOT NULL DEFAULT 1,
    next_fire_at  DATETIME NULL,
    due_at        DATETIME NULL,
    claim_owner   TEXT     NOT NULL DEFAULT '',
    version       INTEGER  NOT NULL DEFAULT 1,
    last_fired_at DATETIME NULL,
    last_run_id   TEXT     NOT NULL DEFAULT '',
    last_error    TEXT     NOT NULL DEFAULT '',
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);
CREATE INDEX workflow_schedules_due ON workflow_schedules (due_at);
CREATE INDEX workflow_schedules_owner_created ON workflow_schedules (owner_id, created_at, id);

-- The notification target of a run (empty: none).
ALTER TABLE workflow_runs ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';
-- kowai_workflow_runs counts the open runs by status.
CREATE INDEX workflow_runs_status ON workflow_runs (status);

-- One row per webhook delivery attempt of a finished run.
CREATE TABLE webhook_deliveries (
    run_id      TEXT     NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    attempt     INTEGER  NOT NULL,
    status_code INTEGER  NOT NULL DEFAULT 0,
    error       TEXT     NOT NULL DEFAULT '',
    delivered   INTEGER  NOT NULL DEFAULT 0,
    at          DATETIME NOT NULL,
    PRIMARY KEY (run_id, attempt)
);

-- The webhook notification of a finished run: written in the transaction that
-- finishes the run (so it survives any crash), claimed by nodes with a version CAS
-- when next_at has passed (indexed), NULL once delivered or given up.
CREATE TABLE webhook_notifications (
    run_id     TEXT     NOT NULL PRIMARY KEY REFERENCES workflow_runs (id) ON DELETE CASCADE,
    url        TEXT     NOT NULL,
    status     TEXT     NOT NULL,
    attempts   INTEGER  NOT NULL DEFAULT 0,
    next_at    DATETIME NULL,
    version    INTEGER  NOT NULL DEFAULT 1,
    updated_at DATETIME NOT NULL
);
CREATE INDEX webhook_notifications_next ON webhook_notifications (next_at);
