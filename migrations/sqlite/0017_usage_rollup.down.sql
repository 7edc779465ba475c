-- Back to one ledger row per call: each rollup row becomes as many rows as it counts
-- calls, at its minute's start, the first carrying the minute's tokens and cost, so
-- that sums and call counts stay what they were. Conversation IDs were not kept.
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
CREATE INDEX usage_ledger_time ON usage_ledger (created_at);

INSERT INTO usage_ledger (id, user_id, agent_id, conversation_id, model, prompt_tokens, completion_tokens, cost_usd, created_at)
WITH RECURSIVE n (i) AS (
    SELECT 1
    UNION ALL
    SELECT i + 1 FROM n WHERE i < (SELECT MAX(calls) FROM usage_rollup)
)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' ||
             hex(randomblob(2)) || '-' || hex(randomblob(6))),
       r.user_id, r.agent_id, '', r.model,
       CASE WHEN n.i = 1 THEN r.prompt_tokens ELSE 0 END, CASE WHEN n.i = 1 THEN r.completion_tokens ELSE 0 END,
       CASE WHEN n.i = 1 THEN r.cost_usd ELSE 0 END, r.minute_start
FROM usage_rollup r JOIN n ON n.i <= r.calls;

DROP TABLE usage_rollup;
