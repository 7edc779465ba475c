DROP INDEX conversations_agent;
ALTER TABLE messages DROP COLUMN variant;
ALTER TABLE agents DROP COLUMN variants;
