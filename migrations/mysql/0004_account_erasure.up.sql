-- A session grain's snapshot belongs to its conversation: conversation_id ties them, so
-- erasing the conversation erases the snapshot (which holds recent messages), and a
-- grain still running cannot save it again afterwards (the insert fails on the key).
-- Snapshots of other kinds leave it NULL. Session snapshots whose conversation is
-- already gone are leftovers of deleted users and are removed.

ALTER TABLE snapshots
    ADD COLUMN conversation_id CHAR(36) NULL,
    ADD KEY snapshots_conversation (conversation_id);
UPDATE snapshots s JOIN conversations c ON c.id = s.identity
    SET s.conversation_id = c.id
    WHERE s.kind = 'session';
DELETE FROM snapshots WHERE kind = 'session' AND conversation_id IS NULL;
ALTER TABLE snapshots
    ADD CONSTRAINT snapshots_conversation_fk FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE;
