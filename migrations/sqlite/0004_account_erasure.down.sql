-- SQLite cannot drop a column used by a foreign key; the table is rebuilt without it.

CREATE TABLE snapshots_0003 (
    kind       TEXT     NOT NULL,
    identity   TEXT     NOT NULL,
    version    INTEGER  NOT NULL,
    state      BLOB     NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (kind, identity)
);
INSERT INTO snapshots_0003 (kind, identity, version, state, updated_at)
    SELECT kind, identity, version, state, updated_at FROM snapshots;
DROP TABLE snapshots;
ALTER TABLE snapshots_0003 RENAME TO snapshots;
