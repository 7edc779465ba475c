package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/doug-martin/goqu/v9/exp"
)

// ErrTokenReused reports a refresh token presented after it was spent: the token was
// probably stolen, so its whole session has been revoked.
var ErrTokenReused = errors.New("persistence: refresh token reused; session revoked")

// ErrRevoked reports a refresh token or session that was revoked.
var ErrRevoked = errors.New("persistence: revoked")

// ErrExpired reports a refresh token or session past its expiry.
var ErrExpired = errors.New("persistence: expired")

// AuthSession is one sign-in of a user. Its refresh tokens form one family: every
// rotation spends a token and issues its child, and revoking the session stops them all.
type AuthSession struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	// RevokedAt is zero while the session is live.
	RevokedAt time.Time
	UserAgent string
	IP        string
}

// RefreshToken is one refresh token, stored only as a hash of the secret the client holds.
type RefreshToken struct {
	ID        string
	SessionID string
	TokenHash string
	// ParentID is the token this one replaced; empty for the session's first token.
	ParentID  string
	SpentAt   time.Time
	RevokedAt time.Time
	ExpiresAt time.Time
	CreatedAt time.Time
}

// AuthSessions stores sign-in sessions and their refresh tokens.
type AuthSessions interface {
	// CreateSession stores a session and its first refresh token together.
	CreateSession(ctx context.Context, s AuthSession, first RefreshToken) (AuthSession, RefreshToken, error)
	// GetSession returns the session with this ID, or ErrNotFound.
	GetSession(ctx context.Context, id string) (AuthSession, error)
	// FindRefreshToken returns the token with this hash, or ErrNotFound.
	FindRefreshToken(ctx context.Context, tokenHash string) (RefreshToken, error)
	// Rotate spends the token with presentedHash and stores next as its successor in the
	// same session, atomically, and returns the session. A token already spent is reuse:
	// the session is revoked and ErrTokenReused returned. A revoked or expired token or
	// session gives ErrRevoked or ErrExpired; an unknown hash ErrNotFound.
	Rotate(ctx context.Context, presentedHash string, next RefreshToken, now time.Time) (AuthSession, RefreshToken, error)
	// RevokeSession revokes a session and all its refresh tokens; revoking twice is fine.
	RevokeSession(ctx context.Context, id string, now time.Time) error
	// IsSessionRevoked reports whether a session is revoked; an unknown session counts as
	// revoked, so a deleted session's tokens stop working.
	IsSessionRevoked(ctx context.Context, id string) (bool, error)
}

// SessionStore implements AuthSessions on a DB.
type SessionStore struct{ db *DB }

var _ AuthSessions = (*SessionStore)(nil)

// NewSessionStore returns the session repository of db.
func NewSessionStore(db *DB) *SessionStore { return &SessionStore{db: db} }

var (
	sessionCols = []any{"id", "user_id", "created_at", "expires_at", "revoked_at", "user_agent", "ip"}
	tokenCols   = []any{"id", "session_id", "token_hash", "parent_id", "spent_at", "revoked_at", "expires_at", "created_at"}
)

func tokenRecord(t RefreshToken) goqu.Record {
	var parent any
	if t.ParentID != "" {
		parent = t.ParentID
	}
	return goqu.Record{
		"id": t.ID, "session_id": t.SessionID, "token_hash": t.TokenHash, "parent_id": parent,
		"spent_at": nullTime(t.SpentAt), "revoked_at": nullTime(t.RevokedAt),
		"expires_at": utc(t.ExpiresAt), "created_at": utc(t.CreatedAt),
	}
}

func (t RefreshToken) withDefaults(sessionID string, now time.Time) RefreshToken {
	if t.ID == "" {
		t.ID = newID()
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.SessionID = sessionID
	t.CreatedAt, t.ExpiresAt = utc(t.CreatedAt), utc(t.ExpiresAt)
	return t
}

// CreateSession implements AuthSessions.
func (s *SessionStore) CreateSession(ctx context.Context, sess AuthSession, first RefreshToken) (AuthSession, RefreshToken, error) {
	if sess.ID == "" {
		sess.ID = newID()
	}
	if sess.CreatedAt.IsZero() {
		sess.CreatedAt = time.Now()
	}
	sess.CreatedAt, sess.ExpiresAt = utc(sess.CreatedAt), utc(sess.ExpiresAt)
	first = first.withDefaults(sess.ID, sess.CreatedAt)
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		ins := tx.Insert("auth_sessions").Prepared(true).Rows(goqu.Record{
			"id": sess.ID, "user_id": sess.UserID, "created_at": sess.CreatedAt, "expires_at": sess.ExpiresAt,
			"revoked_at": nullTime(sess.RevokedAt), "user_agent": sess.UserAgent, "ip": sess.IP,
		})
		if _, err := ins.Executor().ExecContext(ctx); err != nil {
			return classify(err)
		}
		_, err := tx.Insert("refresh_tokens").Prepared(true).Rows(tokenRecord(first)).Executor().ExecContext(ctx)
		return classify(err)
	})
	if err != nil {
		return AuthSession{}, RefreshToken{}, fmt.Errorf("create session for user %s: %w", sess.UserID, err)
	}
	return sess, first, nil
}

func scanSession(r scanner) (AuthSession, error) {
	var (
		s       AuthSession
		revoked sql.NullTime
	)
	if err := r.Scan(&s.ID, &s.UserID, &s.CreatedAt, &s.ExpiresAt, &revoked, &s.UserAgent, &s.IP); err != nil {
		return AuthSession{}, err
	}
	s.RevokedAt = revoked.Time
	return s, nil
}

func scanToken(r scanner) (RefreshToken, error) {
	var (
		t              RefreshToken
		parent         sql.NullString
		spent, revoked sql.NullTime
	)
	if err := r.Scan(&t.ID, &t.SessionID, &t.TokenHash, &parent, &spent, &revoked, &t.ExpiresAt, &t.CreatedAt); err != nil {
		return RefreshToken{}, err
	}
	t.ParentID, t.SpentAt, t.RevokedAt = parent.String, spent.Time, revoked.Time
	return t, nil
}

// first runs q and returns its first row, or ErrNotFound.
func first[T any](ctx context.Context, q *goqu.SelectDataset, scan func(scanner) (T, error)) (T, error) {
	items, err := scanAll(ctx, q.Limit(1), scan)
	if err != nil {
		var zero T
		return zero, classify(err)
	}
	if len(items) == 0 {
		var zero T
		return zero, ErrNotFound
	}
	return items[0], nil
}

// getSession reads a session; lock takes its row lock on MariaDB (SQLite's immediate
// transactions already hold the write lock), serializing rotations within a session.
func getSession(ctx context.Context, r runner, id string, lock bool) (AuthSession, error) {
	q := r.From("auth_sessions").Prepared(true).Select(sessionCols...).Where(goqu.C("id").Eq(id))
	if lock {
		q = q.ForUpdate(exp.Wait)
	}
	return first(ctx, q, scanSession)
}

// GetSession implements AuthSessions.
func (s *SessionStore) GetSession(ctx context.Context, id string) (AuthSession, error) {
	sess, err := getSession(ctx, s.db.Goqu, id, false)
	if err != nil {
		return AuthSession{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return sess, nil
}

func findToken(ctx context.Context, r runner, hash string) (RefreshToken, error) {
	return first(ctx, r.From("refresh_tokens").Prepared(true).Select(tokenCols...).Where(goqu.C("token_hash").Eq(hash)), scanToken)
}

// FindRefreshToken implements AuthSessions.
func (s *SessionStore) FindRefreshToken(ctx context.Context, tokenHash string) (RefreshToken, error) {
	t, err := findToken(ctx, s.db.Goqu, tokenHash)
	if err != nil {
		return RefreshToken{}, fmt.Errorf("find refresh token: %w", err)
	}
	return t, nil
}

// Rotate implements AuthSessions. The spend is a conditional UPDATE (spent_at IS NULL),
// so of two concurrent rotations of one token exactly one wins; the loser sees reuse.
func (s *SessionStore) Rotate(ctx context.Context, presentedHash string, next RefreshToken, now time.Time) (AuthSession, RefreshToken, error) {
	now = utc(now)
	var (
		sess   AuthSession
		reused bool
	)
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		old, err := findToken(ctx, tx, presentedHash)
		if err != nil {
			return err
		}
		// Without the lock, concurrent losers deadlock revoking the session while the
		// winner's token insert holds a foreign-key lock on it.
		if sess, err = getSession(ctx, tx, old.SessionID, true); err != nil {
			return err
		}
		switch {
		case !sess.RevokedAt.IsZero() || !old.RevokedAt.IsZero():
			return ErrRevoked
		case !old.SpentAt.IsZero():
			reused = true
		case !now.Before(old.ExpiresAt) || !now.Before(sess.ExpiresAt):
			return ErrExpired
		}
		if !reused {
			spend := tx.Update("refresh_tokens").Prepared(true).Set(goqu.Record{"spent_at": now}).
				Where(goqu.C("id").Eq(old.ID), goqu.C("spent_at").IsNull())
			n, err := rowsAffected(spend.Executor().ExecContext(ctx))
			if err != nil {
				return classify(err)
			}
			reused = n == 0
		}
		if reused {
			// Commit the revocation: the reuse must not be forgotten with the transaction.
			return revokeSession(ctx, tx, sess.ID, now)
		}
		next = next.withDefaults(sess.ID, now)
		next.ParentID = old.ID
		_, err = tx.Insert("refresh_tokens").Prepared(true).Rows(tokenRecord(next)).Executor().ExecContext(ctx)
		return classify(err)
	})
	switch {
	case err != nil:
		return AuthSession{}, RefreshToken{}, fmt.Errorf("rotate refresh token: %w", err)
	case reused:
		return AuthSession{}, RefreshToken{}, fmt.Errorf("rotate refresh token of session %s: %w", sess.ID, ErrTokenReused)
	}
	return sess, next, nil
}

func revokeSession(ctx context.Context, r runner, id string, now time.Time) error {
	q := r.Update("auth_sessions").Prepared(true).Set(goqu.Record{"revoked_at": now}).
		Where(goqu.C("id").Eq(id), goqu.C("revoked_at").IsNull())
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return classify(err)
	}
	q = r.Update("refresh_tokens").Prepared(true).Set(goqu.Record{"revoked_at": now}).
		Where(goqu.C("session_id").Eq(id), goqu.C("revoked_at").IsNull())
	_, err := q.Executor().ExecContext(ctx)
	return classify(err)
}

// RevokeSession implements AuthSessions.
func (s *SessionStore) RevokeSession(ctx context.Context, id string, now time.Time) error {
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error { return revokeSession(ctx, tx, id, utc(now)) })
	if err != nil {
		return fmt.Errorf("revoke session %s: %w", id, err)
	}
	return nil
}

// IsSessionRevoked implements AuthSessions.
func (s *SessionStore) IsSessionRevoked(ctx context.Context, id string) (bool, error) {
	sess, err := s.GetSession(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	return !sess.RevokedAt.IsZero(), nil
}
