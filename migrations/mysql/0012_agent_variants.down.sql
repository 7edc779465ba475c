DROP INDEX conversations_agent ON conversations;
ALTER TABLE messages DROP COLUMN variant;
ALTER TABLE agents DROP COLUMN variants;
