package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// ErrTokenSpent reports a refresh token that SpendRefreshToken found already spent.
var ErrTokenSpent = errors.New("persistence: refresh token already spent")

// The operations below serve the gateway's authentication service, whose model differs
// slightly from AuthSessions: sessions are created before their first refresh token, a
// token is spent by one conditional update (the service decides what reuse means), and
// users may be linked to an Appwrite account.

// GetByAppwriteID returns the user linked to the Appwrite account appwriteID, or
// ErrNotFound.
func (s *UserStore) GetByAppwriteID(ctx context.Context, appwriteID string) (User, error) {
	if appwriteID == "" {
		return User{}, fmt.Errorf("get user by empty appwrite id: %w", ErrNotFound)
	}
	return s.getWhere(ctx, "appwrite "+appwriteID, goqu.C("appwrite_id").Eq(appwriteID))
}

// LinkAppwrite links the Appwrite account appwriteID to the user; ErrNotFound when there
// is no such user, ErrDuplicate when another user holds that account.
func (s *UserStore) LinkAppwrite(ctx context.Context, id, appwriteID string) error {
	return s.update(ctx, id, "link appwrite", goqu.Record{"appwrite_id": nullString(appwriteID)})
}

// SetPasswordHash replaces the user's password hash, or returns ErrNotFound.
func (s *UserStore) SetPasswordHash(ctx context.Context, id, hash string) error {
	return s.update(ctx, id, "set password", goqu.Record{"password_hash": hash})
}

// HasRole reports whether any user, disabled or not, holds role. Unlike CountWithRole it
// counts disabled users: a disabled admin still means the first-start bootstrap is done.
func (s *UserStore) HasRole(ctx context.Context, role string) (bool, error) {
	// As in CountWithRole: roles are a JSON list, so the role appears quoted.
	quoted, err := json.Marshal(role)
	if err != nil {
		return false, fmt.Errorf("has role %s: %w", role, err)
	}
	pattern := "%" + likeEscaper.Replace(string(quoted)) + "%"
	q := s.db.Goqu.From("users").Prepared(true).Select(goqu.C("id")).Where(goqu.L("roles LIKE ? ESCAPE '!'", pattern))
	var id string
	switch err := classify(scanOne(ctx, q, &id)); {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("has role %s: %w", role, err)
	}
	return true, nil
}

// InsertSession stores a session without a refresh token; the caller adds tokens with
// AddRefreshToken. A taken ID is ErrDuplicate, an unknown user ErrConflict.
func (s *SessionStore) InsertSession(ctx context.Context, sess AuthSession) error {
	q := s.db.Goqu.Insert("auth_sessions").Prepared(true).Rows(goqu.Record{
		"id": sess.ID, "user_id": sess.UserID, "created_at": utc(sess.CreatedAt), "expires_at": utc(sess.ExpiresAt),
		"revoked_at": nullTime(sess.RevokedAt), "user_agent": sess.UserAgent, "ip": sess.IP,
	})
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return wrap(err, "insert session %s", sess.ID)
	}
	return nil
}

// AddRefreshToken stores t (ID filled in when empty). A taken hash is ErrDuplicate, an
// unknown session ErrConflict.
func (s *SessionStore) AddRefreshToken(ctx context.Context, t RefreshToken) error {
	t = t.withDefaults(t.SessionID, time.Now())
	if _, err := s.db.Goqu.Insert("refresh_tokens").Prepared(true).Rows(tokenRecord(t)).Executor().ExecContext(ctx); err != nil {
		return wrap(err, "add refresh token to session %s", t.SessionID)
	}
	return nil
}

// SpendRefreshToken marks the token with this hash spent at now and returns it as it was
// before. A token spent earlier is left alone and returned with ErrTokenSpent; an unknown
// hash is ErrNotFound. The spend is one conditional UPDATE, so of concurrent spends of
// one token exactly one succeeds.
func (s *SessionStore) SpendRefreshToken(ctx context.Context, hash string, now time.Time) (RefreshToken, error) {
	spend := s.db.Goqu.Update("refresh_tokens").Prepared(true).Set(goqu.Record{"spent_at": utc(now)}).
		Where(goqu.C("token_hash").Eq(hash), goqu.C("spent_at").IsNull())
	n, err := rowsAffected(spend.Executor().ExecContext(ctx))
	if err != nil {
		return RefreshToken{}, wrap(err, "spend refresh token")
	}
	t, err := findToken(ctx, s.db.Goqu, hash)
	if err != nil {
		return RefreshToken{}, fmt.Errorf("spend refresh token: %w", err)
	}
	if n == 0 {
		return t, fmt.Errorf("spend refresh token of session %s: %w", t.SessionID, ErrTokenSpent)
	}
	t.SpentAt = time.Time{}
	return t, nil
}

// RevokeUserSessions revokes every live session of a user, with their refresh tokens, and
// returns the IDs it revoked.
func (s *SessionStore) RevokeUserSessions(ctx context.Context, userID string, now time.Time) ([]string, error) {
	return s.RevokeOtherSessions(ctx, userID, "", now)
}

// RevokeOtherSessions revokes every live session of a user except keepID (none when
// empty), with their refresh tokens, in one transaction, and returns the IDs it revoked.
func (s *SessionStore) RevokeOtherSessions(ctx context.Context, userID, keepID string, now time.Time) ([]string, error) {
	var ids []string
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		q := tx.From("auth_sessions").Prepared(true).Select("id").
			Where(goqu.C("user_id").Eq(userID), goqu.C("revoked_at").IsNull(), goqu.C("id").Neq(keepID)).Order(goqu.C("id").Asc())
		var err error
		if ids, err = scanAll(ctx, q, func(r scanner) (string, error) {
			var id string
			return id, r.Scan(&id)
		}); err != nil {
			return classify(err)
		}
		for _, id := range ids {
			if err := revokeSession(ctx, tx, id, utc(now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoke sessions of user %s: %w", userID, err)
	}
	return ids, nil
}

// LiveSession is a session that is not revoked, with its current refresh token's times.
type LiveSession struct {
	AuthSession
	// RefreshedAt is when the current refresh token was issued: the login or the last
	// refresh. Zero when the session has no unspent token.
	RefreshedAt time.Time
	// RefreshExpiresAt is when the current refresh token expires; zero as RefreshedAt.
	RefreshExpiresAt time.Time
}

// liveSessionsSQL joins each live session to its unspent, unrevoked refresh tokens
// (normally one: the current one). Both dialects accept it as is.
const liveSessionsSQL = `SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.user_agent, s.ip,
       t.created_at, t.expires_at
FROM auth_sessions s
LEFT JOIN refresh_tokens t ON t.session_id = s.id AND t.spent_at IS NULL AND t.revoked_at IS NULL
WHERE s.user_id = ? AND s.revoked_at IS NULL
ORDER BY s.created_at DESC, s.id DESC`

// ListLiveSessions returns the user's sessions that are not revoked, newest first. A
// session with two current tokens (a refresh that raced itself) appears once, with the
// newer one.
func (s *SessionStore) ListLiveSessions(ctx context.Context, userID string) ([]LiveSession, error) {
	rows, err := s.db.run.QueryContext(ctx, liveSessionsSQL, userID)
	if err != nil {
		return nil, wrap(err, "list sessions of user %s", userID)
	}
	defer rows.Close()
	var out []LiveSession
	for rows.Next() {
		var (
			ls              LiveSession
			revoked         sql.NullTime
			issued, expires sql.NullTime
		)
		if err := rows.Scan(&ls.ID, &ls.UserID, &ls.CreatedAt, &ls.ExpiresAt, &revoked, &ls.UserAgent, &ls.IP, &issued, &expires); err != nil {
			return nil, wrap(err, "list sessions of user %s", userID)
		}
		ls.RevokedAt, ls.RefreshedAt, ls.RefreshExpiresAt = revoked.Time, issued.Time, expires.Time
		if n := len(out); n > 0 && out[n-1].ID == ls.ID {
			if ls.RefreshedAt.After(out[n-1].RefreshedAt) {
				out[n-1] = ls
			}
			continue
		}
		out = append(out, ls)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "list sessions of user %s", userID)
	}
	return out, nil
}
