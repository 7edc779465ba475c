-- The usage ledger becomes a rollup: one row per user, UTC minute, agent and model,
-- holding the sums of that minute's calls (tokens, cost and how many calls), added to
-- by an upsert that the group-commit writer sums per batch. Day and month budgets start
-- on a minute, so their sums stay exact; a call's own usage stays on its reply
-- message's metadata. minute_start is written as kowai writes times
-- ('YYYY-MM-DD HH:MM:SS+00:00'), so that it compares with them as text.

CREATE TABLE usage_rollup (
    user_id           TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    minute_start      DATETIME NOT NULL,
    agent_id          TEXT     NOT NULL,
    model             TEXT     NOT NULL,
    prompt_tokens     INTEGER  NOT NULL,
    completion_tokens INTEGER  NOT NULL,
    cost_usd          REAL     NOT NULL,
    calls             INTEGER  NOT NULL,
    PRIMARY KEY (user_id, minute_start, agent_id, model)
);
-- Every user's usage since a time (GET /api/v1/admin/figures).
CREATE INDEX usage_rollup_minute ON usage_rollup (minute_start);

INSERT INTO usage_rollup (user_id, minute_start, agent_id, model, prompt_tokens, completion_tokens, cost_usd, calls)
SELECT user_id, strftime('%Y-%m-%d %H:%M:00', created_at) || '+00:00', agent_id, model,
       SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), COUNT(*)
FROM usage_ledger
GROUP BY user_id, strftime('%Y-%m-%d %H:%M:00', created_at), agent_id, model;

DROP TABLE usage_ledger;
