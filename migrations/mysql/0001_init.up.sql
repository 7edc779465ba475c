-- The initial kowai schema for MariaDB.
-- Times are UTC DATETIME(6); IDs are UUIDv7 strings; JSON columns hold JSON text.
-- Statements end with a semicolon at the end of a line (the runner splits on it).

CREATE TABLE users (
    id            CHAR(36)     NOT NULL,
    email         VARCHAR(320) NOT NULL,
    name          VARCHAR(200) NOT NULL DEFAULT '',
    password_hash VARCHAR(255) NOT NULL DEFAULT '',
    roles         TEXT         NOT NULL,
    disabled      BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at    DATETIME(6)  NOT NULL,
    updated_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_email (email),
    CONSTRAINT users_roles_json CHECK (JSON_VALID(roles))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE auth_sessions (
    id         CHAR(36)     NOT NULL,
    user_id    CHAR(36)     NOT NULL,
    created_at DATETIME(6)  NOT NULL,
    expires_at DATETIME(6)  NOT NULL,
    revoked_at DATETIME(6)  NULL,
    user_agent VARCHAR(512) NOT NULL DEFAULT '',
    ip         VARCHAR(64)  NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    KEY auth_sessions_user (user_id, created_at),
    CONSTRAINT auth_sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE refresh_tokens (
    id         CHAR(36)    NOT NULL,
    session_id CHAR(36)    NOT NULL,
    token_hash CHAR(64)    NOT NULL,
    parent_id  CHAR(36)    NULL,
    spent_at   DATETIME(6) NULL,
    revoked_at DATETIME(6) NULL,
    expires_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY refresh_tokens_hash (token_hash),
    KEY refresh_tokens_session (session_id),
    CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES auth_sessions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE agents (
    id           CHAR(36)     NOT NULL,
    owner_id     CHAR(36)     NULL,
    name         VARCHAR(200) NOT NULL,
    type         VARCHAR(100) NOT NULL,
    instructions MEDIUMTEXT   NOT NULL,
    signature    TEXT         NOT NULL,
    model        VARCHAR(200) NOT NULL DEFAULT '',
    config       JSON         NOT NULL,
    version      BIGINT       NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    updated_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY agents_owner (owner_id, id),
    CONSTRAINT agents_owner_fk FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE conversations (
    id         CHAR(36)     NOT NULL,
    owner_id   CHAR(36)     NOT NULL,
    agent_id   VARCHAR(36)  NOT NULL DEFAULT '',
    title      VARCHAR(500) NOT NULL DEFAULT '',
    created_at DATETIME(6)  NOT NULL,
    updated_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY conversations_owner_updated (owner_id, updated_at, id),
    KEY conversations_updated (updated_at, id),
    CONSTRAINT conversations_owner_fk FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE messages (
    id              CHAR(36)     NOT NULL,
    conversation_id CHAR(36)     NOT NULL,
    seq             BIGINT       NOT NULL,
    role            VARCHAR(32)  NOT NULL,
    content         LONGTEXT     NOT NULL,
    metadata        JSON         NULL,
    idempotency_key VARCHAR(255) NULL,
    created_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY messages_conversation_seq (conversation_id, seq),
    UNIQUE KEY messages_conversation_idempotency (conversation_id, idempotency_key),
    CONSTRAINT messages_conversation_fk FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE feedback (
    id         CHAR(36)    NOT NULL,
    message_id CHAR(36)    NOT NULL,
    user_id    CHAR(36)    NOT NULL,
    rating     SMALLINT    NOT NULL,
    comment    TEXT        NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY feedback_message_user (message_id, user_id),
    KEY feedback_user (user_id),
    CONSTRAINT feedback_rating CHECK (rating IN (-1, 1)),
    CONSTRAINT feedback_message_fk FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
    CONSTRAINT feedback_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE snapshots (
    kind       VARCHAR(64)  NOT NULL,
    identity   VARCHAR(255) NOT NULL,
    version    BIGINT       NOT NULL,
    state      LONGBLOB     NOT NULL,
    updated_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (kind, identity)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE workflow_runs (
    id          CHAR(36)     NOT NULL,
    name        VARCHAR(200) NOT NULL,
    owner_id    CHAR(36)     NULL,
    status      VARCHAR(16)  NOT NULL,
    parameters  JSON         NOT NULL,
    result      JSON         NULL,
    error       TEXT         NOT NULL,
    created_at  DATETIME(6)  NOT NULL,
    updated_at  DATETIME(6)  NOT NULL,
    started_at  DATETIME(6)  NULL,
    finished_at DATETIME(6)  NULL,
    PRIMARY KEY (id),
    KEY workflow_runs_owner_created (owner_id, created_at, id),
    CONSTRAINT workflow_runs_owner_fk FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

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

CREATE TABLE audit_log (
    id          CHAR(36)     NOT NULL,
    actor_id    VARCHAR(36)  NOT NULL DEFAULT '',
    action      VARCHAR(100) NOT NULL,
    target_type VARCHAR(64)  NOT NULL DEFAULT '',
    target_id   VARCHAR(255) NOT NULL DEFAULT '',
    detail      JSON         NULL,
    ip          VARCHAR(64)  NOT NULL DEFAULT '',
    created_at  DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY audit_log_created (created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
