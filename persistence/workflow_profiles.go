package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// ProfileStore keeps one small JSON profile document per user (the
// intelligent-chat workflow's), deleted with the user.
type ProfileStore struct{ db *DB }

// NewProfileStore returns the profile repository of db.
func NewProfileStore(db *DB) *ProfileStore { return &ProfileStore{db: db} }

// Profile returns the user's profile, or nil when there is none.
func (s *ProfileStore) Profile(ctx context.Context, userID string) (json.RawMessage, error) {
	var doc []byte
	q := s.db.Goqu.From("user_profiles").Prepared(true).Select("profile").Where(goqu.C("user_id").Eq(userID))
	err := scanOne(ctx, q, &doc)
	if err != nil {
		err = wrap(err, "get profile of %s", userID)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return doc, nil
}

// SaveProfile replaces the user's profile. A missing user is ErrConflict.
func (s *ProfileStore) SaveProfile(ctx context.Context, userID string, doc json.RawMessage) error {
	now := utc(time.Now())
	return s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		upd := tx.Update("user_profiles").Prepared(true).Set(goqu.Record{"profile": string(doc), "updated_at": now}).
			Where(goqu.C("user_id").Eq(userID))
		n, err := rowsAffected(upd.Executor().ExecContext(ctx))
		if err != nil || n > 0 {
			return wrap(err, "save profile of %s", userID)
		}
		_, err = tx.Insert("user_profiles").Prepared(true).Rows(goqu.Record{"user_id": userID, "profile": string(doc), "updated_at": now}).Executor().ExecContext(ctx)
		return wrap(err, "save profile of %s", userID)
	})
}
