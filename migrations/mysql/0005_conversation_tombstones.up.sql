-- A deleted conversation leaves its ID here, so that no later turn creates a new
-- conversation under it (a retried first turn derives the same ID from its user and
-- idempotency key). Only the ID and the time are kept: nothing of the content.

CREATE TABLE conversation_tombstones (
    id         CHAR(36)    NOT NULL,
    deleted_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
