-- Back to the table's accent- and case-insensitive collation. This fails with a duplicate
-- key if two accounts now differ only by case or accents (e.g. "víctim@" and "victim@"),
-- which the binary collation allows; remove one of them first.

ALTER TABLE users MODIFY email VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL;
