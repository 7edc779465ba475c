-- The workflow engine: a run row is the run grain's snapshot (version CAS), with the
-- recovery schedule in due_at; workflow_steps is the journal, unique per (run_id, seq);
-- workflow_events is the run's ordered event log (SSE, attempts counted across crashes).
-- task_runs was never written and is replaced by workflow_steps.

DROP TABLE task_runs;

ALTER TABLE workflow_runs ADD COLUMN parent_id TEXT NULL;
ALTER TABLE workflow_runs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
-- due_at: when a node must look at the run if nobody renews it: the lease expiry while it
-- executes, the wake-up time while it sleeps, now for a new or retried run; NULL when it
-- waits for input or has finished. Recovery reads only due_at <= now (indexed).
ALTER TABLE workflow_runs ADD COLUMN due_at DATETIME NULL;
ALTER TABLE workflow_runs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE workflow_runs ADD COLUMN waiting TEXT NULL CHECK (waiting IS NULL OR json_valid(waiting));
ALTER TABLE workflow_runs ADD COLUMN spend TEXT NULL CHECK (spend IS NULL OR json_valid(spend));
CREATE INDEX workflow_runs_due ON workflow_runs (due_at);
CREATE INDEX workflow_runs_parent ON workflow_runs (parent_id);
-- Concurrency caps count a workflow's runs in progress (per owner too).
CREATE INDEX workflow_runs_name_status ON workflow_runs (name, status, owner_id);

CREATE TABLE workflow_steps (
    run_id      TEXT     NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    seq         INTEGER  NOT NULL,
    name        TEXT     NOT NULL,
    kind        TEXT     NOT NULL,
    status      TEXT     NOT NULL,
    output      TEXT     NULL CHECK (output IS NULL OR json_valid(output)),
    error       TEXT     NOT NULL DEFAULT '',
    attempts    INTEGER  NOT NULL DEFAULT 0,
    spend       TEXT     NULL CHECK (spend IS NULL OR json_valid(spend)),
    cache_hit   INTEGER  NOT NULL DEFAULT 0,
    wake_at     DATETIME NULL,
    started_at  DATETIME NULL,
    finished_at DATETIME NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE workflow_events (
    run_id     TEXT     NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    seq        INTEGER  NOT NULL,
    step_seq   INTEGER  NOT NULL DEFAULT 0,
    status     TEXT     NOT NULL,
    attempt    INTEGER  NOT NULL DEFAULT 0,
    data       TEXT     NOT NULL CHECK (json_valid(data)),
    created_at DATETIME NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- The small JSON profile per user that the intelligent-chat workflow keeps.
CREATE TABLE user_profiles (
    user_id    TEXT     NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    profile    TEXT     NOT NULL CHECK (json_valid(profile)),
    updated_at DATETIME NOT NULL
);
