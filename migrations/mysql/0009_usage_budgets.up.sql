-- The usage ledger: one row per model call charged to a user (chat, WebSocket,
-- OpenAI-compatible and workflow agent turns), the record that budgets and
-- GET /api/v1/users/me/usage are computed from. user_budgets holds an admin's
-- override of a user's role limits (0 is no limit).

CREATE TABLE usage_ledger (
    id                CHAR(36)     NOT NULL,
    user_id           CHAR(36)     NOT NULL,
    agent_id          VARCHAR(64)  NOT NULL,
    conversation_id   VARCHAR(64)  NOT NULL,
    model             VARCHAR(200) NOT NULL,
    prompt_tokens     BIGINT       NOT NULL,
    completion_tokens BIGINT       NOT NULL,
    cost_usd          DOUBLE       NOT NULL,
    created_at        DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY usage_ledger_user (user_id, created_at),
    CONSTRAINT usage_ledger_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_budgets (
    user_id      CHAR(36)    NOT NULL,
    day_tokens   BIGINT      NOT NULL,
    day_usd      DOUBLE      NOT NULL,
    month_tokens BIGINT      NOT NULL,
    month_usd    DOUBLE      NOT NULL,
    updated_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id),
    CONSTRAINT user_budgets_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
