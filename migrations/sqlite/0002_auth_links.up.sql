-- Users may sign in through Appwrite: appwrite_id is the linked Appwrite account's $id,
-- NULL when none is linked. NULLs never collide in a unique index.

ALTER TABLE users ADD COLUMN appwrite_id TEXT NULL;
CREATE UNIQUE INDEX users_appwrite_id ON users (appwrite_id);
