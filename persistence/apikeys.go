package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// APIKey is the stored form of a machine client's key. The secret itself is never
// stored: Hash is its SHA-256 (hex) and Prefix its first characters, for listings.
type APIKey struct {
	ID     string
	UserID string
	Name   string
	Prefix string
	Hash   string
	// Scopes are the scope names the key grants (a subset of its user's permissions).
	Scopes    []string
	CreatedAt time.Time
	// ExpiresAt, LastUsedAt and RevokedAt are zero when unset.
	ExpiresAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// APIKeyStore is the api_keys table.
type APIKeyStore struct{ db *DB }

// NewAPIKeyStore returns the API key repository of db.
func NewAPIKeyStore(db *DB) *APIKeyStore { return &APIKeyStore{db: db} }

var apiKeyColumns = []any{"id", "user_id", "name", "prefix", "key_hash", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at"}

// Create stores k. A taken ID or hash is ErrDuplicate, an unknown user ErrConflict.
func (s *APIKeyStore) Create(ctx context.Context, k APIKey) error {
	scopes, err := json.Marshal(k.Scopes)
	if err != nil {
		return fmt.Errorf("create api key %s: %w", k.ID, err)
	}
	q := s.db.Goqu.Insert("api_keys").Prepared(true).Rows(goqu.Record{
		"id": k.ID, "user_id": k.UserID, "name": k.Name, "prefix": k.Prefix, "key_hash": k.Hash,
		"scopes": string(scopes), "created_at": utc(k.CreatedAt), "expires_at": nullTime(k.ExpiresAt),
		"last_used_at": nullTime(k.LastUsedAt), "revoked_at": nullTime(k.RevokedAt),
	})
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return wrap(err, "create api key %s", k.ID)
	}
	return nil
}

// GetByHash returns the key whose secret hashes to hash, revoked or not, or ErrNotFound.
func (s *APIKeyStore) GetByHash(ctx context.Context, hash string) (APIKey, error) {
	q := s.db.Goqu.From("api_keys").Prepared(true).Select(apiKeyColumns...).Where(goqu.C("key_hash").Eq(hash))
	k, err := first(ctx, q, scanAPIKey)
	if err != nil {
		return APIKey{}, wrap(err, "get api key by hash")
	}
	return k, nil
}

// ListByUser returns the keys of userID that are not revoked, newest first.
func (s *APIKeyStore) ListByUser(ctx context.Context, userID string) ([]APIKey, error) {
	q := s.db.Goqu.From("api_keys").Prepared(true).Select(apiKeyColumns...).
		Where(goqu.C("user_id").Eq(userID), goqu.C("revoked_at").IsNull()).
		Order(goqu.C("created_at").Desc(), goqu.C("id").Desc())
	keys, err := scanAll(ctx, q, scanAPIKey)
	if err != nil {
		return nil, wrap(err, "list api keys of user %s", userID)
	}
	return keys, nil
}

// Revoke sets revoked_at of the key id owned by userID unless it is already revoked;
// ErrNotFound when userID has no live key id (another user's key included).
func (s *APIKeyStore) Revoke(ctx context.Context, userID, id string, at time.Time) error {
	res, err := s.db.Goqu.Update("api_keys").Prepared(true).Set(goqu.Record{"revoked_at": utc(at)}).
		Where(goqu.C("id").Eq(id), goqu.C("user_id").Eq(userID), goqu.C("revoked_at").IsNull()).Executor().ExecContext(ctx)
	return expectRow(res, err, "revoke api key "+id)
}

// TouchUsed records when keys were last used, in one transaction: used maps key IDs to
// times. A key that no longer exists is skipped.
func (s *APIKeyStore) TouchUsed(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		for id, at := range used {
			if _, err := tx.Update("api_keys").Prepared(true).Set(goqu.Record{"last_used_at": utc(at)}).
				Where(goqu.C("id").Eq(id)).Executor().ExecContext(ctx); err != nil {
				return wrap(err, "touch api key %s", id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch api keys: %w", err)
	}
	return nil
}

func scanAPIKey(r scanner) (APIKey, error) {
	var (
		k                      APIKey
		scopes                 string
		expires, used, revoked sql.NullTime
	)
	if err := r.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Hash, &scopes, &k.CreatedAt, &expires, &used, &revoked); err != nil {
		return APIKey{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return APIKey{}, fmt.Errorf("api key %s: scopes: %w", k.ID, err)
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt = expires.Time.UTC(), used.Time.UTC(), revoked.Time.UTC()
	if !expires.Valid {
		k.ExpiresAt = time.Time{}
	}
	if !used.Valid {
		k.LastUsedAt = time.Time{}
	}
	if !revoked.Valid {
		k.RevokedAt = time.Time{}
	}
	return k, nil
}
