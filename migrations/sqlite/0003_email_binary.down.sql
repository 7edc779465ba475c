-- Nothing to undo: the column kept SQLite's BINARY collation, and lower-cased ASCII is a
-- valid form for the previous version too.
SELECT 1;
