ALTER TABLE users
    DROP INDEX users_appwrite_id,
    DROP COLUMN appwrite_id;
