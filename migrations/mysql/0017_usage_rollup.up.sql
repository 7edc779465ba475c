-- The usage ledger becomes a rollup: one row per user, UTC minute, agent and model,
-- holding the sums of that minute's calls (tokens, cost and how many calls), added to
-- by an upsert that the group-commit writer sums per batch. A row per call, with its
-- uuid key, two secondary indexes and a foreign key check, was the heaviest of a chat
-- turn's rows. Day and month budgets start on a minute, so their sums stay exact; a
-- call's own usage stays on its reply message's metadata.

CREATE TABLE usage_rollup (
    user_id           CHAR(36)     NOT NULL,
    minute_start      DATETIME     NOT NULL,
    agent_id          VARCHAR(64)  NOT NULL,
    model             VARCHAR(200) NOT NULL,
    prompt_tokens     BIGINT       NOT NULL,
    completion_tokens BIGINT       NOT NULL,
    cost_usd          DOUBLE       NOT NULL,
    calls             BIGINT       NOT NULL,
    PRIMARY KEY (user_id, minute_start, agent_id, model),
    -- Every user's usage since a time (GET /api/v1/admin/figures).
    KEY usage_rollup_minute (minute_start),
    CONSTRAINT usage_rollup_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO usage_rollup (user_id, minute_start, agent_id, model, prompt_tokens, completion_tokens, cost_usd, calls)
SELECT user_id, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:00'), agent_id, model,
       SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), COUNT(*)
FROM usage_ledger
GROUP BY user_id, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:00'), agent_id, model;

DROP TABLE usage_ledger;
