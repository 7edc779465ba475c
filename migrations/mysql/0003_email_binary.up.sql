-- Emails are stored in one canonical form (trimmed, NFKC, case folded; the application
-- normalizes before every write and lookup) and compared byte for byte. Under the old
-- accent- and case-insensitive collation "víctim@corp.test" found the row of
-- "victim@corp.test" while the login throttle counted it as another account.
--
-- Rows written before this version were trimmed and lower-cased by the application;
-- LOWER(TRIM()) repeats that here so no row depends on the old collation to be found.
-- (Addresses whose case-folded form differs from their lower-case one, such as those
-- with "ß", are renormalized by the application on start; see persistence.NormalizeEmails.)
-- No two rows can collide: the old unique index already refused every pair that differs
-- only by case or accents.

UPDATE users SET email = LOWER(TRIM(email));

ALTER TABLE users MODIFY email VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
