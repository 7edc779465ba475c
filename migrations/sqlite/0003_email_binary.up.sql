-- Emails are stored in one canonical form (trimmed, NFKC, case folded; the application
-- normalizes before every write and lookup) and compared byte for byte. SQLite's default
-- BINARY collation already compares exactly, so only the rows need to be in the new
-- form. Rows written before this version were trimmed and lower-cased by the
-- application; this repeats that for ASCII (SQLite's LOWER folds ASCII only). Addresses
-- whose case-folded form differs from their lower-case one are renormalized by the
-- application on start (persistence.NormalizeEmails). The MariaDB migration of the same
-- version changes the column's collation to a binary one.

UPDATE users SET email = LOWER(TRIM(email));
