-- A deleted conversation leaves its ID here, so that no later turn creates a new
-- conversation under it (a retried first turn derives the same ID from its user and
-- idempotency key). Only the ID and the time are kept: nothing of the content.

CREATE TABLE conversation_tombstones (
    id         TEXT     NOT NULL PRIMARY KEY,
    deleted_at DATETIME NOT NULL
);
