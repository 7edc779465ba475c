-- Users may sign in through Appwrite: appwrite_id is the linked Appwrite account's $id,
-- NULL when none is linked. NULLs never collide in a unique index.

ALTER TABLE users
    ADD COLUMN appwrite_id VARCHAR(255) NULL,
    ADD UNIQUE KEY users_appwrite_id (appwrite_id);
