-- A/B variants: an agent's weighted variants (a JSON array, NULL for none), and
-- on every message the variant that answered ('' when the agent has none).
ALTER TABLE agents ADD COLUMN variants TEXT NULL;
ALTER TABLE messages ADD COLUMN variant TEXT NOT NULL DEFAULT '';
-- GET /api/v1/agents/{id}/stats reads an agent's conversations.
CREATE INDEX conversations_agent ON conversations (agent_id, id);
