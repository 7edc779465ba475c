-- A session grain's snapshot belongs to its conversation: conversation_id ties them, so
-- erasing the conversation erases the snapshot (which holds recent messages), and a
-- grain still running cannot save it again afterwards (the insert fails on the key).
-- Snapshots of other kinds leave it NULL. Session snapshots whose conversation is
-- already gone are leftovers of deleted users and are removed.

ALTER TABLE snapshots ADD COLUMN conversation_id TEXT NULL REFERENCES conversations (id) ON DELETE CASCADE;
UPDATE snapshots SET conversation_id = identity WHERE kind = 'session' AND identity IN (SELECT id FROM conversations);
DELETE FROM snapshots WHERE kind = 'session' AND conversation_id IS NULL;
CREATE INDEX snapshots_conversation ON snapshots (conversation_id);
