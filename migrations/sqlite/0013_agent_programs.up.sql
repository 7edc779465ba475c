-- Compiled programs deployed to agents: the compiled program state (the JSON that
-- kowai optimize writes) the agent runs, NULL for the type's own program. A canary
-- carries its state inside its variant (agents.variants).
ALTER TABLE agents ADD COLUMN program TEXT NULL;
