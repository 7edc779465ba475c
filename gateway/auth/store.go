package auth

import (
	"context"
	"time"
)

// User is what authentication needs to know about a kowai user.
type User struct {
	// ID is a UUIDv7 string.
	ID string
	// Email is stored trimmed and lower-cased; it is unique.
	Email string
	// Name is the display name.
	Name string
	// PasswordHash is an argon2id PHC string, or empty for users who only
	// sign in through Appwrite (password login then always fails).
	PasswordHash string
	// Roles are the user's roles; never empty for a stored user.
	Roles []Role
	// Disabled users can neither log in nor refresh.
	Disabled bool
	// AppwriteID is the linked Appwrite account's $id, or empty; unique when
	// set.
	AppwriteID string
	// CreatedAt is when the user was created.
	CreatedAt time.Time
}

// UserStore is the user repository authentication needs. Implementations
// return ErrNotFound and ErrConflict (wrapped or bare) as documented.
type UserStore interface {
	// CreateUser inserts u. It returns ErrConflict when the email or a
	// non-empty AppwriteID is already taken.
	CreateUser(ctx context.Context, u User) error
	// UserByID returns the user with id, or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByEmail returns the user whose (normalized) email is email, or
	// ErrNotFound.
	UserByEmail(ctx context.Context, email string) (User, error)
	// UserByAppwriteID returns the user linked to the Appwrite account
	// appwriteID, or ErrNotFound.
	UserByAppwriteID(ctx context.Context, appwriteID string) (User, error)
	// SetPasswordHash replaces the user's password hash (after a rehash with
	// new parameters), or returns ErrNotFound.
	SetPasswordHash(ctx context.Context, userID, hash string) error
	// LinkAppwrite sets the user's AppwriteID, or returns ErrNotFound, or
	// ErrConflict when another user holds that Appwrite ID.
	LinkAppwrite(ctx context.Context, userID, appwriteID string) error
	// HasUserWithRole reports whether any user, disabled or not, holds role.
	HasUserWithRole(ctx context.Context, role Role) (bool, error)
}

// Session is one login: the family of refresh tokens issued from it, and the
// access tokens carrying its ID as sid.
type Session struct {
	// ID is a UUIDv7 string.
	ID string
	// UserID is the user who logged in.
	UserID string
	// CreatedAt is the login time.
	CreatedAt time.Time
	// ExpiresAt is the end of the session's absolute lifetime, set at login
	// (CreatedAt plus the max age then configured); zero means unknown.
	ExpiresAt time.Time
	// RevokedAt is set once the session is revoked (logout, refresh token
	// reuse, account disabled); nil while it is live.
	RevokedAt *time.Time
	// UserAgent and IP describe the client that logged in, when known.
	UserAgent string
	IP        string
}

// SessionInfo is a live session as its user sees it in a listing.
type SessionInfo struct {
	Session
	// RefreshedAt is when the session's current refresh token was issued: at
	// login or at the last refresh; zero when it has none.
	RefreshedAt time.Time
	// RefreshExpiresAt is when that token expires; zero when it has none.
	RefreshExpiresAt time.Time
}

// RefreshToken is the stored form of one refresh token.
type RefreshToken struct {
	// Hash is HashRefreshToken of the token: 64 lowercase hex characters,
	// unique.
	Hash string
	// SessionID is the session (family) the token belongs to.
	SessionID string
	// UserID is the session's user.
	UserID string
	// CreatedAt is when the token was issued.
	CreatedAt time.Time
	// ExpiresAt is when the token stops being accepted.
	ExpiresAt time.Time
	// SpentAt is set when the token is exchanged for a new pair.
	SpentAt *time.Time
}

// SessionStore is the session and refresh token repository authentication
// needs. Implementations return ErrNotFound, ErrConflict and ErrTokenSpent
// (wrapped or bare) as documented.
type SessionStore interface {
	// CreateSession inserts s; ErrConflict when the ID exists.
	CreateSession(ctx context.Context, s Session) error
	// SessionByID returns the session, or ErrNotFound.
	SessionByID(ctx context.Context, id string) (Session, error)
	// RevokeSession sets RevokedAt to at unless it is already set. It is
	// idempotent; ErrNotFound when the session does not exist.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeUserSessions revokes every live session of userID at at and
	// returns the IDs it revoked (none is not an error).
	RevokeUserSessions(ctx context.Context, userID string, at time.Time) ([]string, error)
	// RevokeOtherSessions is RevokeUserSessions sparing the session keepID.
	RevokeOtherSessions(ctx context.Context, userID, keepID string, at time.Time) ([]string, error)
	// ListSessions returns the sessions of userID that are not revoked,
	// newest first, each with its current (unspent) refresh token's times.
	ListSessions(ctx context.Context, userID string) ([]SessionInfo, error)
	// AddRefreshToken inserts t; ErrConflict when the hash exists.
	AddRefreshToken(ctx context.Context, t RefreshToken) error
	// SpendRefreshToken atomically marks the token with this hash spent at
	// at and returns it as it was before. If it was already spent it
	// changes nothing and returns the record together with ErrTokenSpent;
	// ErrNotFound when no token has the hash. In SQL: UPDATE ... SET
	// spent_at = ? WHERE hash = ? AND spent_at IS NULL, then read the row.
	// Two concurrent calls with one hash must see exactly one success.
	SpendRefreshToken(ctx context.Context, hash string, at time.Time) (RefreshToken, error)
}
