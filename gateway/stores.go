package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// Stores are the repositories the REST routes read and write directly:
// queries (history, listings) and small writes that touch no actor state
// (feedback, agent definitions, user administration, the audit log).
type Stores struct {
	Users         persistence.Users
	Conversations persistence.Conversations
	Messages      persistence.Messages
	Feedback      persistence.FeedbackWriter
	Agents        persistence.Agents
	Audit         persistence.AuditLog
	// Usage, optional, sums the usage ledger of every user (the cluster's
	// model usage today in GET /api/v1/admin/figures).
	Usage UsageTotals
	// Stats, optional, reads agents' turns and feedback for
	// GET /api/v1/agents/{id}/stats (not served without it).
	Stats persistence.Stats
}

// UsageTotals sums the usage ledger of every user; persistence.UsageStore is one.
type UsageTotals interface {
	AllTotal(ctx context.Context, since time.Time) (persistence.UsageTotal, error)
}

// NewStores returns the repositories of db.
func NewStores(db *persistence.DB) Stores {
	return Stores{
		Users:         persistence.NewUserStore(db),
		Conversations: persistence.NewConversationStore(db),
		Messages:      persistence.NewMessageStore(db),
		Feedback:      persistence.NewFeedbackStore(db),
		Agents:        persistence.NewAgentStore(db),
		Audit:         persistence.NewAuditStore(db),
		Usage:         persistence.NewUsageStore(db),
		Stats:         persistence.NewStatsStore(db),
	}
}

func (s Stores) complete() bool {
	return s.Users != nil && s.Conversations != nil && s.Messages != nil && s.Feedback != nil && s.Agents != nil && s.Audit != nil
}

// authError translates persistence sentinels into the ones auth's stores
// promise; the cause stays in the chain for logs.
func authError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, persistence.ErrNotFound):
		return fmt.Errorf("%w: %w", auth.ErrNotFound, err)
	case errors.Is(err, persistence.ErrDuplicate):
		return fmt.Errorf("%w: %w", auth.ErrConflict, err)
	case errors.Is(err, persistence.ErrTokenSpent):
		return fmt.Errorf("%w: %w", auth.ErrTokenSpent, err)
	}
	return err
}

// AuthUsers implements auth.UserStore over persistence.
type AuthUsers struct{ users *persistence.UserStore }

var _ auth.UserStore = AuthUsers{}

// NewAuthUsers returns auth's user store over db.
func NewAuthUsers(db *persistence.DB) AuthUsers {
	return AuthUsers{users: persistence.NewUserStore(db)}
}

func roleNames(roles []auth.Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

func authRoles(names []string) []auth.Role {
	out := make([]auth.Role, len(names))
	for i, n := range names {
		out[i] = auth.Role(n)
	}
	return out
}

func authUser(u persistence.User) auth.User {
	return auth.User{ID: u.ID, Email: u.Email, Name: u.Name, PasswordHash: u.PasswordHash, Roles: authRoles(u.Roles),
		Disabled: u.Disabled, AppwriteID: u.AppwriteID, CreatedAt: u.CreatedAt}
}

// CreateUser implements auth.UserStore.
func (s AuthUsers) CreateUser(ctx context.Context, u auth.User) error {
	_, err := s.users.Create(ctx, persistence.User{ID: u.ID, Email: u.Email, Name: u.Name, PasswordHash: u.PasswordHash,
		Roles: roleNames(u.Roles), Disabled: u.Disabled, AppwriteID: u.AppwriteID, CreatedAt: u.CreatedAt})
	return authError(err)
}

func linked(u persistence.User, err error) (auth.User, error) {
	if err != nil {
		return auth.User{}, authError(err)
	}
	return authUser(u), nil
}

// UserByID implements auth.UserStore.
func (s AuthUsers) UserByID(ctx context.Context, id string) (auth.User, error) {
	return linked(s.users.Get(ctx, id))
}

// UserByEmail implements auth.UserStore.
func (s AuthUsers) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	return linked(s.users.GetByEmail(ctx, email))
}

// UserByAppwriteID implements auth.UserStore.
func (s AuthUsers) UserByAppwriteID(ctx context.Context, appwriteID string) (auth.User, error) {
	return linked(s.users.GetByAppwriteID(ctx, appwriteID))
}

// SetPasswordHash implements auth.UserStore.
func (s AuthUsers) SetPasswordHash(ctx context.Context, userID, hash string) error {
	return authError(s.users.SetPasswordHash(ctx, userID, hash))
}

// LinkAppwrite implements auth.UserStore.
func (s AuthUsers) LinkAppwrite(ctx context.Context, userID, appwriteID string) error {
	return authError(s.users.LinkAppwrite(ctx, userID, appwriteID))
}

// HasUserWithRole implements auth.UserStore.
func (s AuthUsers) HasUserWithRole(ctx context.Context, role auth.Role) (bool, error) {
	return s.users.HasRole(ctx, string(role))
}

// AuthSessions implements auth.SessionStore over persistence.
type AuthSessions struct{ sessions *persistence.SessionStore }

var _ auth.SessionStore = AuthSessions{}

// NewAuthSessions returns auth's session store over db.
func NewAuthSessions(db *persistence.DB) AuthSessions {
	return AuthSessions{sessions: persistence.NewSessionStore(db)}
}

// sessionNoExpiry fills the expires_at column of a session created without
// an end (sessions made before KOWAI_SESSION_MAX_AGE existed have it too).
var sessionNoExpiry = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// CreateSession implements auth.SessionStore.
func (s AuthSessions) CreateSession(ctx context.Context, sess auth.Session) error {
	expires := sess.ExpiresAt
	if expires.IsZero() {
		expires = sessionNoExpiry
	}
	return authError(s.sessions.InsertSession(ctx, persistence.AuthSession{
		ID: sess.ID, UserID: sess.UserID, CreatedAt: sess.CreatedAt, ExpiresAt: expires, UserAgent: sess.UserAgent, IP: sess.IP}))
}

// SessionByID implements auth.SessionStore.
func (s AuthSessions) SessionByID(ctx context.Context, id string) (auth.Session, error) {
	ps, err := s.sessions.GetSession(ctx, id)
	if err != nil {
		return auth.Session{}, authError(err)
	}
	return authSession(ps), nil
}

func authSession(ps persistence.AuthSession) auth.Session {
	out := auth.Session{ID: ps.ID, UserID: ps.UserID, CreatedAt: ps.CreatedAt, UserAgent: ps.UserAgent, IP: ps.IP}
	if ps.ExpiresAt.Before(sessionNoExpiry) {
		out.ExpiresAt = ps.ExpiresAt
	}
	if !ps.RevokedAt.IsZero() {
		at := ps.RevokedAt
		out.RevokedAt = &at
	}
	return out
}

// RevokeSession implements auth.SessionStore.
func (s AuthSessions) RevokeSession(ctx context.Context, id string, at time.Time) error {
	if _, err := s.sessions.GetSession(ctx, id); err != nil {
		return authError(err)
	}
	return authError(s.sessions.RevokeSession(ctx, id, at))
}

// RevokeUserSessions implements auth.SessionStore.
func (s AuthSessions) RevokeUserSessions(ctx context.Context, userID string, at time.Time) ([]string, error) {
	ids, err := s.sessions.RevokeUserSessions(ctx, userID, at)
	return ids, authError(err)
}

// RevokeOtherSessions implements auth.SessionStore.
func (s AuthSessions) RevokeOtherSessions(ctx context.Context, userID, keepID string, at time.Time) ([]string, error) {
	ids, err := s.sessions.RevokeOtherSessions(ctx, userID, keepID, at)
	return ids, authError(err)
}

// ListSessions implements auth.SessionStore.
func (s AuthSessions) ListSessions(ctx context.Context, userID string) ([]auth.SessionInfo, error) {
	live, err := s.sessions.ListLiveSessions(ctx, userID)
	if err != nil {
		return nil, authError(err)
	}
	out := make([]auth.SessionInfo, len(live))
	for i, ls := range live {
		out[i] = auth.SessionInfo{Session: authSession(ls.AuthSession), RefreshedAt: ls.RefreshedAt, RefreshExpiresAt: ls.RefreshExpiresAt}
	}
	return out, nil
}

// AddRefreshToken implements auth.SessionStore. The token's user is its
// session's; the row does not repeat it.
func (s AuthSessions) AddRefreshToken(ctx context.Context, t auth.RefreshToken) error {
	return authError(s.sessions.AddRefreshToken(ctx, persistence.RefreshToken{
		SessionID: t.SessionID, TokenHash: t.Hash, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}))
}

// SpendRefreshToken implements auth.SessionStore.
func (s AuthSessions) SpendRefreshToken(ctx context.Context, hash string, at time.Time) (auth.RefreshToken, error) {
	pt, spendErr := s.sessions.SpendRefreshToken(ctx, hash, at)
	if spendErr != nil && !errors.Is(spendErr, persistence.ErrTokenSpent) {
		return auth.RefreshToken{}, authError(spendErr)
	}
	sess, err := s.sessions.GetSession(ctx, pt.SessionID)
	if err != nil {
		return auth.RefreshToken{}, authError(err)
	}
	out := auth.RefreshToken{Hash: pt.TokenHash, SessionID: pt.SessionID, UserID: sess.UserID, CreatedAt: pt.CreatedAt, ExpiresAt: pt.ExpiresAt}
	if !pt.SpentAt.IsZero() {
		spent := pt.SpentAt
		out.SpentAt = &spent
	}
	return out, authError(spendErr)
}
