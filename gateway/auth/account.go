package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Errors of the self-service account operations; every one is safe to show
// a client.
var (
	// ErrWrongPassword means the password given to confirm a change (a new
	// password, an account erasure) is not the account's (403).
	ErrWrongPassword = errors.New("auth: the password is wrong")
	// ErrRecentLoginRequired means the account has no password (it signs in
	// through Appwrite) and the session is older than RecentLogin, so the
	// change needs a fresh sign-in first (403).
	ErrRecentLoginRequired = errors.New("auth: sign in again, then retry within 10 minutes")
	// ErrNoPassword means a password change was asked of an account that has
	// none: it signs in through Appwrite (409).
	ErrNoPassword = errors.New("auth: this account signs in through Appwrite and has no password")
	// ErrSessionNotFound means the caller has no session with that ID; another
	// user's session is reported the same way (404).
	ErrSessionNotFound = errors.New("auth: no such session")
)

// RecentLogin is how young a session must be to erase an account that has no
// password to confirm with.
const RecentLogin = 10 * time.Minute

// Bounds of the client description stored with a session.
const (
	maxUserAgentBytes = 512
	maxIPBytes        = 64
)

// ClientInfo describes the client of a request, stored with the sessions it
// starts and shown in the session list.
type ClientInfo struct {
	// IP is the client address (after trusted proxies).
	IP string
	// UserAgent is the User-Agent header.
	UserAgent string
}

type clientKey struct{}

// WithClient returns ctx carrying c, for the sessions started under it.
func WithClient(ctx context.Context, c ClientInfo) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFromContext returns the ClientInfo WithClient stored, bounded and
// stripped of control characters; the zero value when there is none.
func ClientFromContext(ctx context.Context) ClientInfo {
	c, _ := ctx.Value(clientKey{}).(ClientInfo)
	return ClientInfo{IP: printable(c.IP, maxIPBytes), UserAgent: printable(c.UserAgent, maxUserAgentBytes)}
}

// printable returns s as valid UTF-8 without control characters, cut to at
// most max bytes on a character boundary.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// validateNewPassword applies CheckPassword to a password change; failures
// are a *FieldError for new_password.
func validateNewPassword(pw, email string) error {
	err := CheckPassword(pw, email)
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: "new_password", Message: fe.Message}
	}
	return err
}

// Sessions lists p's user's sessions that can still be used: not revoked,
// within SessionMaxAge and with a refresh token that has not expired; the
// caller's own session is always listed.
func (s *Service) Sessions(ctx context.Context, p Principal) ([]SessionInfo, error) {
	all, err := s.cfg.Sessions.ListSessions(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("auth: listing sessions of user %s: %w", p.UserID, err)
	}
	now := s.cfg.Clock()
	out := all[:0]
	for _, si := range all {
		if si.ID == p.SessionID || (now.Before(s.sessionEnd(si.Session)) && now.Before(si.RefreshExpiresAt)) {
			out = append(out, si)
		}
	}
	return out, nil
}

// RevokeSession revokes one of p's user's sessions (DELETE
// /auth/sessions/{id}); revoking the caller's own is a logout. A session of
// another user, or none, is ErrSessionNotFound.
func (s *Service) RevokeSession(ctx context.Context, p Principal, sessionID string) error {
	sess, err := s.cfg.Sessions.SessionByID(ctx, sessionID)
	if errors.Is(err, ErrNotFound) || (err == nil && sess.UserID != p.UserID) {
		return ErrSessionNotFound
	}
	if err != nil {
		return fmt.Errorf("auth: loading session: %w", err)
	}
	return s.revoke(ctx, sess.ID)
}

// ChangePassword replaces p's user's password after checking the current
// one (POST /auth/password), then revokes every other session of the user;
// the caller's stays. The check of the current password spends a login
// attempt (Config.Throttle), like a login.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string) error {
	u, err := s.account(ctx, p)
	if err != nil {
		return err
	}
	if u.PasswordHash == "" {
		return ErrNoPassword
	}
	if err := validateNewPassword(next, u.Email); err != nil {
		return err
	}
	if err := s.checkPassword(ctx, u, current); err != nil {
		return err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	err = s.cfg.Users.SetPasswordHash(ctx, u.ID, hash)
	s.forgetUser(u.ID)
	if err != nil {
		return fmt.Errorf("auth: storing the new password of user %s: %w", u.ID, err)
	}
	ids, err := s.cfg.Sessions.RevokeOtherSessions(ctx, u.ID, p.SessionID, s.cfg.Clock().UTC())
	if err != nil {
		return fmt.Errorf("auth: revoking the other sessions of user %s: %w", u.ID, err)
	}
	if err := s.publish(ctx, ids); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "password changed", "user_id", u.ID, "sessions_revoked", len(ids))
	s.Audit(ctx, AuditEvent{Action: AuditPasswordChange, UserID: u.ID, Detail: map[string]string{"sessions_revoked": strconv.Itoa(len(ids))}})
	return nil
}

// DeleteAccount erases p's user (DELETE /users/me). The user confirms with
// their password; an account without one (Appwrite sign-in) instead needs a
// session younger than RecentLogin. Every session of the user is revoked
// first, on every node, and then erase removes the user and their data (it
// must be one transaction: persistence's Users.Erase).
func (s *Service) DeleteAccount(ctx context.Context, p Principal, password string, erase func(context.Context) error) error {
	u, err := s.account(ctx, p)
	if err != nil {
		return err
	}
	if u.PasswordHash == "" {
		sess, err := s.cfg.Sessions.SessionByID(ctx, p.SessionID)
		if err != nil {
			return fmt.Errorf("auth: loading session: %w", err)
		}
		if s.cfg.Clock().Sub(sess.CreatedAt) > RecentLogin {
			return ErrRecentLoginRequired
		}
	} else if err := s.checkPassword(ctx, u, password); err != nil {
		return err
	}
	if err := s.RevokeUserSessions(ctx, u.ID); err != nil {
		return err
	}
	err = erase(ctx)
	s.forgetUser(u.ID)
	if err != nil {
		return fmt.Errorf("auth: erasing user %s: %w", u.ID, err)
	}
	s.log.InfoContext(ctx, "account erased", "user_id", u.ID)
	return nil
}

// account loads p's user; a user deleted since the token was issued is
// ErrInvalidToken.
func (s *Service) account(ctx context.Context, p Principal) (User, error) {
	u, err := s.cfg.Users.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("%w: user gone", ErrInvalidToken)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: loading user: %w", err)
	}
	return u, nil
}

// checkPassword confirms that password is u's, spending a login attempt
// first when login throttling is on.
func (s *Service) checkPassword(ctx context.Context, u User, password string) error {
	if password == "" {
		return &FieldError{Field: "password", Message: "is required"}
	}
	if s.cfg.Throttle != nil {
		if err := s.cfg.Throttle.Attempt(ctx, AccountKey(u.ID), ClientFromContext(ctx).IP); err != nil {
			return err
		}
	}
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes]
	}
	ok, _, err := s.cfg.Hasher.Verify(ctx, password, u.PasswordHash)
	if err != nil {
		return fmt.Errorf("auth: verifying password of user %s: %w", u.ID, err)
	}
	if !ok {
		s.log.InfoContext(ctx, "password confirmation failed", "user_id", u.ID)
		return ErrWrongPassword
	}
	return nil
}

// publish tells every node that the sessions ids are revoked; the database
// already says so.
func (s *Service) publish(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := s.cfg.Revocations.Revoke(ctx, id, s.revocationTTL()); err != nil {
			return err
		}
	}
	return nil
}
