DROP INDEX IF EXISTS users_appwrite_id;
ALTER TABLE users DROP COLUMN appwrite_id;
