ALTER TABLE snapshots DROP FOREIGN KEY snapshots_conversation_fk;
ALTER TABLE snapshots
    DROP INDEX snapshots_conversation,
    DROP COLUMN conversation_id;
