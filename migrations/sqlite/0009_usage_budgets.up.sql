-- The usage ledger: one row per model call charged to a user (chat, WebSocket,
-- OpenAI-compatible and workflow agent turns), the record that budgets and
-- GET /api/v1/users/me/usage are computed from. user_budgets holds an admin's
-- override of a user's role limits (0 is no limit).

CREATE TABLE usage_ledger (
    id                TEXT     NOT NULL PRIMARY KEY,
    user_id           TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id          TEXT     NOT NULL,
    conversation_id   TEXT     NOT NULL,
    model             TEXT     NOT NULL,
    prompt_tokens     INTEGER  NOT NULL,
    completion_tokens INTEGER  NOT NULL,
    cost_usd          REAL     NOT NULL,
    created_at        DATETIME NOT NULL
);
CREATE INDEX usage_ledger_user ON usage_ledger (user_id, created_at);

CREATE TABLE user_budgets (
    user_id      TEXT     NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    day_tokens   INTEGER  NOT NULL,
    day_usd      REAL     NOT NULL,
    month_tokens INTEGER  NOT NULL,
    month_usd    REAL     NOT NULL,
    updated_at   DATETIME NOT NULL
);
