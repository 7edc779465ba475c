-- The initial kowai schema for SQLite, the same tables and meaning as the MariaDB one.
-- Times are UTC DATETIME text ("2006-01-02 15:04:05.999999-07:00", written by the driver),
-- which sorts in time order; IDs are UUIDv7 strings; JSON columns hold JSON text.
-- Statements end with a semicolon at the end of a line (the runner splits on it).

CREATE TABLE users (
    id            TEXT     NOT NULL PRIMARY KEY,
    email         TEXT     NOT NULL,
    name          TEXT     NOT NULL DEFAULT '',
    password_hash TEXT     NOT NULL DEFAULT '',
    roles         TEXT     NOT NULL CHECK (json_valid(roles)),
    disabled      INTEGER  NOT NULL DEFAULT 0,
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE auth_sessions (
    id         TEXT     NOT NULL PRIMARY KEY,
    user_id    TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    revoked_at DATETIME NULL,
    user_agent TEXT     NOT NULL DEFAULT '',
    ip         TEXT     NOT NULL DEFAULT ''
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id, created_at);

CREATE TABLE refresh_tokens (
    id         TEXT     NOT NULL PRIMARY KEY,
    session_id TEXT     NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    token_hash TEXT     NOT NULL,
    parent_id  TEXT     NULL,
    spent_at   DATETIME NULL,
    revoked_at DATETIME NULL,
    expires_at DATETIME NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE agents (
    id           TEXT     NOT NULL PRIMARY KEY,
    owner_id     TEXT     NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT     NOT NULL,
    type         TEXT     NOT NULL,
    instructions TEXT     NOT NULL,
    signature    TEXT     NOT NULL,
    model        TEXT     NOT NULL DEFAULT '',
    config       TEXT     NOT NULL CHECK (json_valid(config)),
    version      INTEGER  NOT NULL,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL
);
CREATE INDEX agents_owner ON agents (owner_id, id);

CREATE TABLE conversations (
    id         TEXT     NOT NULL PRIMARY KEY,
    owner_id   TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id   TEXT     NOT NULL DEFAULT '',
    title      TEXT     NOT NULL DEFAULT '',
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL
);
CREATE INDEX conversations_owner_updated ON conversations (owner_id, updated_at, id);
CREATE INDEX conversations_updated ON conversations (updated_at, id);

CREATE TABLE messages (
    id              TEXT     NOT NULL PRIMARY KEY,
    conversation_id TEXT     NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER  NOT NULL,
    role            TEXT     NOT NULL,
    content         TEXT     NOT NULL,
    metadata        TEXT     NULL CHECK (metadata IS NULL OR json_valid(metadata)),
    idempotency_key TEXT     NULL,
    created_at      DATETIME NOT NULL
);
CREATE UNIQUE INDEX messages_conversation_seq ON messages (conversation_id, seq);
CREATE UNIQUE INDEX messages_conversation_idempotency ON messages (conversation_id, idempotency_key);

CREATE TABLE feedback (
    id         TEXT     NOT NULL PRIMARY KEY,
    message_id TEXT     NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating     INTEGER  NOT NULL CHECK (rating IN (-1, 1)),
    comment    TEXT     NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX feedback_message_user ON feedback (message_id, user_id);
CREATE INDEX feedback_user ON feedback (user_id);

CREATE TABLE snapshots (
    kind       TEXT     NOT NULL,
    identity   TEXT     NOT NULL,
    version    INTEGER  NOT NULL,
    state      BLOB     NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (kind, identity)
);

CREATE TABLE workflow_runs (
    id          TEXT     NOT NULL PRIMARY KEY,
    name        TEXT     NOT NULL,
    owner_id    TEXT     NULL REFERENCES users (id) ON DELETE SET NULL,
    status      TEXT     NOT NULL,
    parameters  TEXT     NOT NULL CHECK (json_valid(parameters)),
    result      TEXT     NULL CHECK (result IS NULL OR json_valid(result)),
    error       TEXT     NOT NULL,
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL,
    started_at  DATETIME NULL,
    finished_at DATETIME NULL
);
CREATE INDEX workflow_runs_owner_created ON workflow_runs (owner_id, created_at, id);

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

CREATE TABLE audit_log (
    id          TEXT     NOT NULL PRIMARY KEY,
    actor_id    TEXT     NOT NULL DEFAULT '',
    action      TEXT     NOT NULL,
    target_type TEXT     NOT NULL DEFAULT '',
    target_id   TEXT     NOT NULL DEFAULT '',
    detail      TEXT     NULL CHECK (detail IS NULL OR json_valid(detail)),
    ip          TEXT     NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL
);
CREATE INDEX audit_log_created ON audit_log (created_at, id);
