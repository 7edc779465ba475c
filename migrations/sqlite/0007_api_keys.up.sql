-- API keys for machine clients. Only the SHA-256 of the secret is stored (hex,
-- unique); prefix is the first characters of the key, shown in listings so a user can
-- tell keys apart. scopes is a JSON list. last_used_at is updated at most about once a
-- minute per key, never on every request.

CREATE TABLE api_keys (
    id           TEXT     NOT NULL PRIMARY KEY,
    user_id      TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT     NOT NULL,
    prefix       TEXT     NOT NULL,
    key_hash     TEXT     NOT NULL,
    scopes       TEXT     NOT NULL,
    created_at   DATETIME NOT NULL,
    expires_at   DATETIME NULL,
    last_used_at DATETIME NULL,
    revoked_at   DATETIME NULL
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);
