-- Back to one ledger row per call: each rollup row becomes as many rows as it counts
-- calls, at its minute's start, the first carrying the minute's tokens and cost, so
-- that sums and call counts stay what they were. Conversation IDs were not kept.
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
    KEY usage_ledger_time (created_at),
    CONSTRAINT usage_ledger_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO usage_ledger (id, user_id, agent_id, conversation_id, model, prompt_tokens, completion_tokens, cost_usd, created_at)
WITH RECURSIVE n (i) AS (
    SELECT 1
    UNION ALL
    SELECT i + 1 FROM n WHERE i < (SELECT MAX(calls) FROM usage_rollup)
)
SELECT UUID(), r.user_id, r.agent_id, '', r.model,
       IF(n.i = 1, r.prompt_tokens, 0), IF(n.i = 1, r.completion_tokens, 0), IF(n.i = 1, r.cost_usd, 0), r.minute_start
FROM usage_rollup r JOIN n ON n.i <= r.calls;

DROP TABLE usage_rollup;
