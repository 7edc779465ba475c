ALTER TABLE agents DROP COLUMN program;
