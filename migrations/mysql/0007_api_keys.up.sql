-- API keys for machine clients. Only the SHA-256 of the secret is stored (hex,
-- unique); prefix is the first characters of the key, shown in listings so a user can
-- tell keys apart. scopes is a JSON list. last_used_at is updated at most about once a
-- minute per key, never on every request.

CREATE TABLE api_keys (
    id           CHAR(36)     NOT NULL,
    user_id      CHAR(36)     NOT NULL,
    name         VARCHAR(200) NOT NULL,
    prefix       VARCHAR(32)  NOT NULL,
    key_hash     CHAR(64)     NOT NULL,
    scopes       TEXT         NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    expires_at   DATETIME(6)  NULL,
    last_used_at DATETIME(6)  NULL,
    revoked_at   DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY api_keys_hash (key_hash),
    KEY api_keys_user (user_id, created_at),
    CONSTRAINT api_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
