package authtest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kowai/kowai/gateway/auth"
)

// Users is an in-memory auth.UserStore.
type Users struct {
	mu    sync.Mutex
	users map[string]auth.User
}

var _ auth.UserStore = (*Users)(nil)

// NewUsers returns an empty store.
func NewUsers() *Users { return &Users{users: make(map[string]auth.User)} }

func clone(u auth.User) auth.User {
	u.Roles = slices.Clone(u.Roles)
	return u
}

// CreateUser implements auth.UserStore.
func (s *Users) CreateUser(_ context.Context, u auth.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.users {
		if o.ID == u.ID || o.Email == u.Email || (u.AppwriteID != "" && o.AppwriteID == u.AppwriteID) {
			return auth.ErrConflict
		}
	}
	s.users[u.ID] = clone(u)
	return nil
}

// UserByID implements auth.UserStore.
func (s *Users) UserByID(_ context.Context, id string) (auth.User, error) {
	return s.find(func(u auth.User) bool { return u.ID == id })
}

// UserByEmail implements auth.UserStore.
func (s *Users) UserByEmail(_ context.Context, email string) (auth.User, error) {
	return s.find(func(u auth.User) bool { return u.Email == email })
}

// UserByAppwriteID implements auth.UserStore.
func (s *Users) UserByAppwriteID(_ context.Context, appwriteID string) (auth.User, error) {
	return s.find(func(u auth.User) bool { return appwriteID != "" && u.AppwriteID == appwriteID })
}

// SetPasswordHash implements auth.UserStore.
func (s *Users) SetPasswordHash(_ context.Context, userID, hash string) error {
	return s.update(userID, func(u *auth.User) error { u.PasswordHash = hash; return nil })
}

// LinkAppwrite implements auth.UserStore.
func (s *Users) LinkAppwrite(_ context.Context, userID, appwriteID string) error {
	return s.update(userID, func(u *auth.User) error {
		for _, o := range s.users {
			if o.ID != userID && o.AppwriteID == appwriteID {
				return auth.ErrConflict
			}
		}
		u.AppwriteID = appwriteID
		return nil
	})
}

// HasUserWithRole implements auth.UserStore.
func (s *Users) HasUserWithRole(_ context.Context, role auth.Role) (bool, error) {
	_, err := s.find(func(u auth.User) bool { return slices.Contains(u.Roles, role) })
	return err == nil, nil
}

// SetDisabled disables or enables a user, as an admin would.
func (s *Users) SetDisabled(userID string, disabled bool) error {
	return s.update(userID, func(u *auth.User) error { u.Disabled = disabled; return nil })
}

// SetRoles replaces a user's roles, as an admin would.
func (s *Users) SetRoles(userID string, roles ...auth.Role) error {
	return s.update(userID, func(u *auth.User) error { u.Roles = slices.Clone(roles); return nil })
}

// Delete removes a user, as an admin would.
func (s *Users) Delete(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, userID)
}

func (s *Users) find(match func(auth.User) bool) (auth.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if match(u) {
			return clone(u), nil
		}
	}
	return auth.User{}, auth.ErrNotFound
}

func (s *Users) update(id string, f func(*auth.User) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return auth.ErrNotFound
	}
	if err := f(&u); err != nil {
		return err
	}
	s.users[id] = u
	return nil
}

// Sessions is an in-memory auth.SessionStore.
type Sessions struct {
	mu       sync.Mutex
	sessions map[string]auth.Session
	tokens   map[string]auth.RefreshToken
}

var _ auth.SessionStore = (*Sessions)(nil)

// NewSessions returns an empty store.
func NewSessions() *Sessions {
	return &Sessions{sessions: make(map[string]auth.Session), tokens: make(map[string]auth.RefreshToken)}
}

// CreateSession implements auth.SessionStore.
func (s *Sessions) CreateSession(_ context.Context, sess auth.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sess.ID]; ok {
		return auth.ErrConflict
	}
	s.sessions[sess.ID] = sess
	return nil
}

// SessionByID implements auth.SessionStore.
func (s *Sessions) SessionByID(_ context.Context, id string) (auth.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return auth.Session{}, auth.ErrNotFound
	}
	return sess, nil
}

// RevokeSession implements auth.SessionStore.
func (s *Sessions) RevokeSession(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return auth.ErrNotFound
	}
	if sess.RevokedAt == nil {
		sess.RevokedAt = &at
		s.sessions[id] = sess
	}
	return nil
}

// RevokeUserSessions implements auth.SessionStore.
func (s *Sessions) RevokeUserSessions(_ context.Context, userID string, at time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, sess := range s.sessions {
		if sess.UserID == userID && sess.RevokedAt == nil {
			sess.RevokedAt = &at
			s.sessions[id] = sess
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// RevokeOtherSessions implements auth.SessionStore.
func (s *Sessions) RevokeOtherSessions(_ context.Context, userID, keepID string, at time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, sess := range s.sessions {
		if sess.UserID == userID && sess.RevokedAt == nil && id != keepID {
			sess.RevokedAt = &at
			s.sessions[id] = sess
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// ListSessions implements auth.SessionStore.
func (s *Sessions) ListSessions(_ context.Context, userID string) ([]auth.SessionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auth.SessionInfo
	for _, sess := range s.sessions {
		if sess.UserID != userID || sess.RevokedAt != nil {
			continue
		}
		info := auth.SessionInfo{Session: sess}
		for _, t := range s.tokens {
			if t.SessionID == sess.ID && t.SpentAt == nil && t.CreatedAt.After(info.RefreshedAt) {
				info.RefreshedAt, info.RefreshExpiresAt = t.CreatedAt, t.ExpiresAt
			}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b auth.SessionInfo) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, nil
}

// AddRefreshToken implements auth.SessionStore.
func (s *Sessions) AddRefreshToken(_ context.Context, t auth.RefreshToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[t.Hash]; ok {
		return auth.ErrConflict
	}
	s.tokens[t.Hash] = t
	return nil
}

// SpendRefreshToken implements auth.SessionStore.
func (s *Sessions) SpendRefreshToken(_ context.Context, hash string, at time.Time) (auth.RefreshToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[hash]
	if !ok {
		return auth.RefreshToken{}, auth.ErrNotFound
	}
	if t.SpentAt != nil {
		return t, auth.ErrTokenSpent
	}
	spent := t
	spent.SpentAt = &at
	s.tokens[hash] = spent
	return t, nil
}
