package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/kowai/kowai/internal/emailaddr"
)

// Input bounds.
const (
	// MaxEmailBytes is the longest accepted email address (RFC 5321 path).
	MaxEmailBytes = 254
	// MaxNameChars is the longest accepted display name, in characters.
	MaxNameChars = 100
)

// Config configures NewService. Users, Sessions, Tokens, Hasher and
// Revocations are required.
type Config struct {
	// Users and Sessions are the repositories.
	Users    UserStore
	Sessions SessionStore
	// Tokens issues and verifies access tokens.
	Tokens *Tokens
	// Hasher hashes passwords.
	Hasher *Hasher
	// Revocations is checked on every authenticated request; normally a
	// RevocationCache over RedisRevocations (with Redis) or
	// StoreRevocations (without).
	Revocations RevocationStore
	// RefreshTTL is the refresh token lifetime, renewed by every refresh;
	// default 720 hours.
	RefreshTTL time.Duration
	// SessionMaxAge is the absolute lifetime of a session, refreshes
	// included (KOWAI_SESSION_MAX_AGE): no refresh succeeds at or after its
	// creation time plus SessionMaxAge; default 720 hours.
	SessionMaxAge time.Duration
	// Throttle limits login attempts; nil disables throttling.
	Throttle *Throttle
	// Appwrite enables SignInWithAppwrite and LinkAppwrite; nil disables
	// them.
	Appwrite *AppwriteVerifier
	// Audit receives the security events of the Audit* constants; nil
	// records none.
	Audit AuditLog
	// UserCacheTTL is how long Me reuses a user read (default
	// DefaultUserCacheTTL); negative disables the cache. A change made
	// through this Service shows at once; one made by another node shows
	// within UserCacheTTL. Keep it no longer than the revocation cache's TTL.
	UserCacheTTL time.Duration
	// UserCacheEntries bounds the user cache; default DefaultUserCacheEntries.
	UserCacheEntries int
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives security events; nil discards them.
	Logger *slog.Logger
}

// Service implements registration, login, token refresh, logout and
// authentication of requests. It is safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	users *userCache // nil when disabled
}

// NewService validates cfg and returns a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Users == nil || cfg.Sessions == nil || cfg.Tokens == nil || cfg.Hasher == nil || cfg.Revocations == nil {
		return nil, fmt.Errorf("%w: Users, Sessions, Tokens, Hasher and Revocations are required", ErrConfig)
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = 720 * time.Hour
	}
	if cfg.RefreshTTL < 0 {
		return nil, fmt.Errorf("%w: refresh TTL %s must be positive", ErrConfig, cfg.RefreshTTL)
	}
	if cfg.SessionMaxAge == 0 {
		cfg.SessionMaxAge = 720 * time.Hour
	}
	if cfg.SessionMaxAge < 0 {
		return nil, fmt.Errorf("%w: session max age %s must be positive", ErrConfig, cfg.SessionMaxAge)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.UserCacheTTL == 0 {
		cfg.UserCacheTTL = DefaultUserCacheTTL
	}
	if cfg.UserCacheEntries <= 0 {
		cfg.UserCacheEntries = DefaultUserCacheEntries
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "auth")}
	if cfg.UserCacheTTL > 0 {
		s.users = newUserCache(cfg.Users, cfg.UserCacheTTL, cfg.UserCacheEntries, cfg.Clock)
	}
	return s, nil
}

// TokenPair is the answer to a login, a refresh or an Appwrite sign-in; its
// JSON form is the response body of API.md.
type TokenPair struct {
	// AccessToken is the signed JWT for Authorization: Bearer.
	AccessToken string `json:"access_token"`
	// RefreshToken is the opaque token for POST /auth/refresh.
	RefreshToken string `json:"refresh_token"`
	// TokenType is always "Bearer".
	TokenType string `json:"token_type"`
	// ExpiresIn is the access token lifetime in seconds.
	ExpiresIn int64 `json:"expires_in"`
}

// PublicUser is the JSON view of a user that API.md returns.
type PublicUser struct {
	// ID is the user ID.
	ID string `json:"id"`
	// Email is the normalized email.
	Email string `json:"email"`
	// Name is the display name.
	Name string `json:"name"`
	// Roles are the user's roles.
	Roles []Role `json:"roles"`
}

// Public returns the user's client-visible fields.
func (u User) Public() PublicUser {
	return PublicUser{ID: u.ID, Email: u.Email, Name: u.Name, Roles: slices.Clone(u.Roles)}
}

// NewUser describes a user to create.
type NewUser struct {
	// Email is normalized before use.
	Email string
	// Password must satisfy CheckPassword.
	Password string
	// Name is the optional display name.
	Name string
	// Roles default to [user].
	Roles []Role
}

// Register creates a user with role user (POST /auth/register). It returns
// ErrEmailTaken when the email is in use and a *FieldError for bad input.
func (s *Service) Register(ctx context.Context, email, password, name string) (User, error) {
	return s.CreateUser(ctx, NewUser{Email: email, Password: password, Name: name})
}

// CreateUser creates a user with the given roles (kowai user create, the
// first admin, registration).
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	email, err := NormalizeEmail(nu.Email)
	if err != nil {
		return User{}, err
	}
	if err := CheckPassword(nu.Password, email); err != nil {
		return User{}, err
	}
	name, err := normalizeName(nu.Name)
	if err != nil {
		return User{}, err
	}
	roles := nu.Roles
	if len(roles) == 0 {
		roles = []Role{RoleUser}
	}
	for _, r := range roles {
		if _, err := ParseRole(string(r)); err != nil {
			return User{}, err
		}
	}
	hash, err := s.cfg.Hasher.Hash(ctx, nu.Password)
	if err != nil {
		return User{}, err
	}
	u, err := s.insertUser(ctx, User{Email: email, Name: name, PasswordHash: hash, Roles: roles})
	if err == nil {
		s.Audit(ctx, AuditEvent{Action: AuditUserCreate, UserID: u.ID, Detail: map[string]string{"method": "password", "roles": roleList(u.Roles)}})
	}
	return u, err
}

func roleList(roles []Role) string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return strings.Join(names, ",")
}

func (s *Service) insertUser(ctx context.Context, u User) (User, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return User{}, fmt.Errorf("auth: new user id: %w", err)
	}
	u.ID = id.String()
	u.Roles = sortedRoles(u.Roles)
	u.CreatedAt = s.cfg.Clock().UTC()
	if err := s.cfg.Users.CreateUser(ctx, u); err != nil {
		if errors.Is(err, ErrConflict) {
			return User{}, ErrEmailTaken
		}
		return User{}, fmt.Errorf("auth: creating user: %w", err)
	}
	s.log.InfoContext(ctx, "user created", "user_id", u.ID, "roles", u.Roles)
	return u, nil
}

// EnsureAdmin creates an admin with email and password when no user holds
// the admin role yet (KOWAI_ADMIN_EMAIL / KOWAI_ADMIN_PASSWORD on start). It
// reports whether it created one. When several nodes start at once, the
// losers see the email taken and return false.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (bool, error) {
	exists, err := s.cfg.Users.HasUserWithRole(ctx, RoleAdmin)
	if err != nil {
		return false, fmt.Errorf("auth: looking for an admin: %w", err)
	}
	if exists {
		return false, nil
	}
	_, err = s.CreateUser(ctx, NewUser{Email: email, Password: password, Name: "Administrator", Roles: []Role{RoleAdmin}})
	if errors.Is(err, ErrEmailTaken) {
		norm, _ := NormalizeEmail(email)
		u, lookupErr := s.cfg.Users.UserByEmail(ctx, norm)
		if lookupErr == nil && slices.Contains(u.Roles, RoleAdmin) {
			return false, nil
		}
		return false, fmt.Errorf("auth: admin email %s belongs to a user who is not an admin: %w", norm, err)
	}
	if err != nil {
		return false, fmt.Errorf("auth: creating the first admin: %w", err)
	}
	return true, nil
}

// Login checks email and password and starts a session (POST /auth/login).
// Unknown email, wrong password and a user without a password all return
// ErrInvalidCredentials after the same amount of hashing work. ip is the
// client address, used for throttling and the audit log.
//
// The throttle counts per address first, then per account the email
// resolves to (its user ID, or the canonical email when there is no such
// user), so every spelling of one account draws from one budget.
func (s *Service) Login(ctx context.Context, email, password, ip string) (TokenPair, error) {
	norm, emailErr := NormalizeEmail(email)
	if s.cfg.Throttle != nil {
		if err := s.cfg.Throttle.AttemptFrom(ctx, ip); err != nil {
			return TokenPair{}, s.loginRefused(ctx, User{}, norm, ip, err)
		}
	}
	// Oversized or invalid passwords are refused after the same work as a
	// wrong one, hashing a bounded input.
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes]
	}
	var u User
	err := emailErr
	if err == nil {
		u, err = s.cfg.Users.UserByEmail(ctx, norm)
	}
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidInput) {
		return TokenPair{}, fmt.Errorf("auth: loading user: %w", err)
	}
	found := err == nil
	if s.cfg.Throttle != nil {
		account := "email:" + norm
		switch {
		case found:
			account = AccountKey(u.ID)
		case emailErr != nil:
			account = invalidEmailKey(email)
		}
		if err := s.cfg.Throttle.AttemptOn(ctx, account, ip); err != nil {
			return TokenPair{}, s.loginRefused(ctx, u, norm, ip, err)
		}
	}
	if !found || u.PasswordHash == "" {
		if err := s.cfg.Hasher.VerifyDummy(ctx, password); err != nil {
			return TokenPair{}, err
		}
		// Not the email: people type passwords into it.
		s.log.InfoContext(ctx, "login failed", "reason", "unknown_account", "ip", ip)
		return TokenPair{}, s.loginRefused(ctx, u, norm, ip, ErrInvalidCredentials)
	}
	ok, rehash, err := s.cfg.Hasher.Verify(ctx, password, u.PasswordHash)
	if err != nil {
		return TokenPair{}, fmt.Errorf("auth: verifying password of user %s: %w", u.ID, err)
	}
	if !ok {
		s.log.InfoContext(ctx, "login failed", "user_id", u.ID, "ip", ip)
		return TokenPair{}, s.loginRefused(ctx, u, norm, ip, ErrInvalidCredentials)
	}
	if u.Disabled {
		return TokenPair{}, s.loginRefused(ctx, u, norm, ip, ErrAccountDisabled)
	}
	if rehash {
		s.rehash(ctx, u.ID, password)
	}
	pair, err := s.startSession(ctx, u)
	if err == nil {
		s.Audit(ctx, AuditEvent{Action: AuditLogin, UserID: u.ID, IP: ip, Detail: map[string]string{"method": "password"}})
	}
	return pair, err
}

// loginRefused records a refused login in the audit log and returns err.
// u is the account the email resolved to, or the zero User; the email is
// never recorded.
func (s *Service) loginRefused(ctx context.Context, u User, email, ip string, err error) error {
	reason := "invalid_credentials"
	switch {
	case errors.Is(err, ErrThrottled):
		reason = "throttled"
		s.log.WarnContext(ctx, "login throttled", "ip", ip)
	case errors.Is(err, ErrAccountDisabled):
		reason = "account_disabled"
	}
	// The typed email is not kept for an unknown account: people type
	// passwords into it.
	detail := map[string]string{"reason": reason}
	s.Audit(ctx, AuditEvent{Action: AuditLoginFailed, UserID: u.ID, IP: ip, Detail: detail})
	return err
}

// rehash upgrades a password hash to the current parameters. Failure is
// logged, not returned: the login itself was valid.
func (s *Service) rehash(ctx context.Context, userID, password string) {
	hash, err := s.cfg.Hasher.Hash(ctx, password)
	if err == nil {
		err = s.cfg.Users.SetPasswordHash(ctx, userID, hash)
		s.forgetUser(userID)
	}
	if err != nil {
		s.log.WarnContext(ctx, "password rehash failed", "user_id", userID, "error", err)
	}
}

func (s *Service) startSession(ctx context.Context, u User) (TokenPair, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return TokenPair{}, fmt.Errorf("auth: new session id: %w", err)
	}
	now := s.cfg.Clock().UTC()
	client := ClientFromContext(ctx) // set by the gateway (WithClient)
	sess := Session{ID: id.String(), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionMaxAge),
		UserAgent: client.UserAgent, IP: client.IP}
	if err := s.cfg.Sessions.CreateSession(ctx, sess); err != nil {
		return TokenPair{}, fmt.Errorf("auth: creating session: %w", err)
	}
	return s.issuePair(ctx, u, sess)
}

// sessionEnd is when sess stops being refreshable: its creation plus the
// configured max age, or the end stored with it when that is earlier (the
// max age was lowered since).
func (s *Service) sessionEnd(sess Session) time.Time {
	end := sess.CreatedAt.Add(s.cfg.SessionMaxAge)
	if !sess.ExpiresAt.IsZero() && sess.ExpiresAt.Before(end) {
		end = sess.ExpiresAt
	}
	return end
}

// issuePair issues a token pair in sess. The refresh token expires after
// RefreshTTL or at the session's end, whichever comes first.
func (s *Service) issuePair(ctx context.Context, u User, sess Session) (TokenPair, error) {
	sessionID := sess.ID
	refresh, hash := NewRefreshToken()
	now := s.cfg.Clock().UTC()
	expires := now.Add(s.cfg.RefreshTTL)
	if end := s.sessionEnd(sess); end.Before(expires) {
		expires = end
	}
	if err := s.cfg.Sessions.AddRefreshToken(ctx, RefreshToken{
		Hash: hash, SessionID: sessionID, UserID: u.ID, CreatedAt: now, ExpiresAt: expires,
	}); err != nil {
		return TokenPair{}, fmt.Errorf("auth: storing refresh token: %w", err)
	}
	access, _, err := s.cfg.Tokens.Issue(u.ID, sessionID, u.Roles)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{
		AccessToken:  access,
		RefreshToken: refresh,
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.cfg.Tokens.AccessTTL() / time.Second),
	}, nil
}

// Refresh exchanges a refresh token for a new pair in the same session
// (POST /auth/refresh). The presented token is spent. Presenting a spent
// token revokes the whole session and returns ErrTokenReused: either it was
// stolen or the client raced itself, and the session can no longer be
// trusted. Unknown, expired and revoked tokens, and tokens of a session
// older than SessionMaxAge, return ErrInvalidToken.
func (s *Service) Refresh(ctx context.Context, token string) (TokenPair, error) {
	if !wellFormedRefreshToken(token) {
		return TokenPair{}, fmt.Errorf("%w: malformed refresh token", ErrInvalidToken)
	}
	now := s.cfg.Clock().UTC()
	rt, err := s.cfg.Sessions.SpendRefreshToken(ctx, HashRefreshToken(token), now)
	switch {
	case errors.Is(err, ErrNotFound):
		return TokenPair{}, fmt.Errorf("%w: unknown refresh token", ErrInvalidToken)
	case errors.Is(err, ErrTokenSpent):
		s.log.WarnContext(ctx, "refresh token reused; revoking session", "user_id", rt.UserID, "session_id", rt.SessionID)
		if err := s.revoke(ctx, rt.SessionID); err != nil {
			return TokenPair{}, err
		}
		s.Audit(ctx, AuditEvent{Action: AuditRefreshReuse, UserID: rt.UserID, Detail: map[string]string{"session_id": rt.SessionID}})
		return TokenPair{}, ErrTokenReused
	case err != nil:
		return TokenPair{}, fmt.Errorf("auth: spending refresh token: %w", err)
	}
	if !now.Before(rt.ExpiresAt) {
		return TokenPair{}, fmt.Errorf("%w: refresh token expired", ErrInvalidToken)
	}
	sess, err := s.cfg.Sessions.SessionByID(ctx, rt.SessionID)
	if errors.Is(err, ErrNotFound) {
		return TokenPair{}, fmt.Errorf("%w: session gone", ErrInvalidToken)
	}
	if err != nil {
		return TokenPair{}, fmt.Errorf("auth: loading session: %w", err)
	}
	if sess.RevokedAt != nil {
		return TokenPair{}, fmt.Errorf("%w: session revoked", ErrInvalidToken)
	}
	if !now.Before(s.sessionEnd(sess)) {
		return TokenPair{}, fmt.Errorf("%w: session older than its max age; log in again", ErrInvalidToken)
	}
	u, err := s.cfg.Users.UserByID(ctx, rt.UserID)
	if errors.Is(err, ErrNotFound) {
		return TokenPair{}, fmt.Errorf("%w: user gone", ErrInvalidToken)
	}
	if err != nil {
		return TokenPair{}, fmt.Errorf("auth: loading user: %w", err)
	}
	if u.Disabled {
		if err := s.revoke(ctx, sess.ID); err != nil {
			return TokenPair{}, err
		}
		return TokenPair{}, ErrAccountDisabled
	}
	return s.issuePair(ctx, u, sess)
}

// Authenticate verifies an access token and checks that its session has not
// been revoked. Token problems return ErrInvalidToken; a failing revocation
// backend returns its error, which must not be treated as a valid token.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	c, err := s.cfg.Tokens.Verify(token)
	if err != nil {
		return Principal{}, err
	}
	revoked, err := s.cfg.Revocations.IsRevoked(ctx, c.SessionID)
	if err != nil {
		return Principal{}, fmt.Errorf("auth: revocation check: %w", err)
	}
	if revoked {
		return Principal{}, fmt.Errorf("%w: session revoked", ErrInvalidToken)
	}
	return c.Principal(), nil
}

// Logout revokes p's session (POST /auth/logout): its refresh tokens and,
// on every node within the revocation cache's staleness bound, its access
// tokens stop working.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if err := s.revoke(ctx, p.SessionID); err != nil {
		return err
	}
	s.Audit(ctx, AuditEvent{Action: AuditLogout, UserID: p.UserID, Detail: map[string]string{"session_id": p.SessionID}})
	return nil
}

// RevokeUserSessions revokes every session of userID, e.g. when an admin
// disables or deletes the user or changes their roles. Call it after such a
// change: it also drops the user from Me's cache on this node.
func (s *Service) RevokeUserSessions(ctx context.Context, userID string) error {
	s.forgetUser(userID)
	ids, err := s.cfg.Sessions.RevokeUserSessions(ctx, userID, s.cfg.Clock().UTC())
	if err != nil {
		return fmt.Errorf("auth: revoking sessions of user %s: %w", userID, err)
	}
	for _, id := range ids {
		if err := s.cfg.Revocations.Revoke(ctx, id, s.revocationTTL()); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) revoke(ctx context.Context, sessionID string) error {
	if err := s.cfg.Sessions.RevokeSession(ctx, sessionID, s.cfg.Clock().UTC()); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("auth: revoking session %s: %w", sessionID, err)
	}
	if err := s.cfg.Revocations.Revoke(ctx, sessionID, s.revocationTTL()); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "session revoked", "session_id", sessionID)
	return nil
}

// revocationTTL outlives every access token of a revoked session: the
// longest lifetime plus the leeway a verifier grants past exp.
func (s *Service) revocationTTL() time.Duration {
	return s.cfg.Tokens.AccessTTL() + s.cfg.Tokens.Leeway()
}

// Me returns the authenticated user (GET /auth/me). A user deleted since the
// token was issued gives ErrInvalidToken. Answers come from a short cache
// (Config.UserCacheTTL): a change made by another node shows within that
// TTL, and one made through this Service at once.
func (s *Service) Me(ctx context.Context, p Principal) (User, error) {
	var u User
	var err error
	if s.users != nil {
		u, err = s.users.userByID(ctx, p.UserID)
	} else {
		u, err = s.cfg.Users.UserByID(ctx, p.UserID)
	}
	if errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("%w: user gone", ErrInvalidToken)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: loading user: %w", err)
	}
	return u, nil
}

// UserCan reports whether userID's current roles grant perm, for work done on the
// user's behalf without a token, such as a workflow run's agent task (a run keeps
// no token, and a schedule fires with no caller). The user is read through Me's
// cache (Config.UserCacheTTL): a role change made through this Service's node
// (RevokeUserSessions forgets the user) applies at once, one made on another node
// within the TTL. A user that is gone or disabled may do nothing. Only store errors
// are returned.
func (s *Service) UserCan(ctx context.Context, userID string, perm Permission) (bool, error) {
	var u User
	var err error
	if s.users != nil {
		u, err = s.users.userByID(ctx, userID)
	} else {
		u, err = s.cfg.Users.UserByID(ctx, userID)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("auth: loading user %s: %w", userID, err)
	case u.Disabled:
		return false, nil
	}
	return Principal{UserID: u.ID, Roles: u.Roles}.Can(perm), nil
}

// SignInWithAppwrite verifies an Appwrite JWT and starts a kowai session for
// the Appwrite account's user (POST /auth/appwrite). A linked user signs in
// directly. An Appwrite account without a linked user never takes over an
// existing kowai account, whatever its email: when a user has that email
// the answer is ErrAppwriteLinkRequired, and the owner links the two with
// LinkAppwrite from a signed-in session. Otherwise a new user is created
// with role user plus the roles its labels map to, but only when Appwrite
// has verified the email (else ErrAppwriteEmailUnverified). Roles of
// existing users are left alone.
func (s *Service) SignInWithAppwrite(ctx context.Context, appwriteJWT string) (TokenPair, error) {
	if s.cfg.Appwrite == nil {
		return TokenPair{}, ErrAppwriteDisabled
	}
	au, err := s.cfg.Appwrite.Verify(ctx, appwriteJWT)
	if err != nil {
		return TokenPair{}, err
	}
	u, err := s.appwriteUser(ctx, au)
	if err != nil {
		return TokenPair{}, err
	}
	if u.Disabled {
		return TokenPair{}, ErrAccountDisabled
	}
	pair, err := s.startSession(ctx, u)
	if err == nil {
		s.Audit(ctx, AuditEvent{Action: AuditLogin, UserID: u.ID, Detail: map[string]string{"method": "appwrite"}})
	}
	return pair, err
}

func (s *Service) appwriteUser(ctx context.Context, au AppwriteUser) (User, error) {
	u, err := s.cfg.Users.UserByAppwriteID(ctx, au.ID)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("auth: loading appwrite user: %w", err)
	}
	email, err := NormalizeEmail(au.Email)
	if err != nil {
		return User{}, fmt.Errorf("%w: the appwrite account has no usable email", ErrInvalidToken)
	}
	if !au.EmailVerification {
		return User{}, ErrAppwriteEmailUnverified
	}
	switch _, err := s.cfg.Users.UserByEmail(ctx, email); {
	case err == nil:
		s.log.InfoContext(ctx, "appwrite sign-in refused: the email belongs to an unlinked account")
		return User{}, ErrAppwriteLinkRequired
	case !errors.Is(err, ErrNotFound):
		return User{}, fmt.Errorf("auth: loading user: %w", err)
	}
	name, err := normalizeName(au.Name)
	if err != nil {
		name = ""
	}
	u, err = s.insertUser(ctx, User{Email: email, Name: name, Roles: s.cfg.Appwrite.Roles(au), AppwriteID: au.ID})
	if errors.Is(err, ErrEmailTaken) {
		// Another request for the same Appwrite account won the race, and
		// its user is ours; or a local registration of the email did, and
		// the same rule as above applies.
		u, err = s.cfg.Users.UserByAppwriteID(ctx, au.ID)
		if errors.Is(err, ErrNotFound) {
			return User{}, ErrAppwriteLinkRequired
		}
		return u, err
	}
	if err == nil {
		s.Audit(ctx, AuditEvent{Action: AuditUserCreate, UserID: u.ID, Detail: map[string]string{"method": "appwrite", "roles": roleList(u.Roles), "appwrite_id": au.ID}})
	}
	return u, err
}

// LinkAppwrite links the Appwrite account appwriteJWT belongs to to p's own
// user (POST /auth/appwrite/link), so that it can sign in through Appwrite
// from then on. Holding a session of the user and a JWT of the Appwrite
// account proves control of both; the emails need not match. Linking the
// same pair again changes nothing; an Appwrite account linked to another
// user, or a user linked to another Appwrite account, is
// ErrAppwriteAlreadyLinked.
func (s *Service) LinkAppwrite(ctx context.Context, p Principal, appwriteJWT string) (User, error) {
	if s.cfg.Appwrite == nil {
		return User{}, ErrAppwriteDisabled
	}
	au, err := s.cfg.Appwrite.Verify(ctx, appwriteJWT)
	if err != nil {
		return User{}, err
	}
	u, err := s.cfg.Users.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("%w: user gone", ErrInvalidToken)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: loading user: %w", err)
	}
	switch u.AppwriteID {
	case au.ID:
		return u, nil
	case "":
	default:
		return User{}, ErrAppwriteAlreadyLinked
	}
	err = s.cfg.Users.LinkAppwrite(ctx, u.ID, au.ID)
	s.forgetUser(u.ID)
	switch {
	case errors.Is(err, ErrConflict):
		return User{}, ErrAppwriteAlreadyLinked
	case errors.Is(err, ErrNotFound):
		return User{}, fmt.Errorf("%w: user gone", ErrInvalidToken)
	case err != nil:
		return User{}, fmt.Errorf("auth: linking appwrite account: %w", err)
	}
	u.AppwriteID = au.ID
	s.log.InfoContext(ctx, "appwrite account linked", "user_id", u.ID)
	s.Audit(ctx, AuditEvent{Action: AuditAppwriteLink, UserID: u.ID, Detail: map[string]string{"appwrite_id": au.ID}})
	return u, nil
}

// forgetUser drops userID from Me's cache after a change to the user.
func (s *Service) forgetUser(userID string) {
	if s.users != nil {
		s.users.forget(userID)
	}
}

// invalidEmailKey is the throttle's account for a login with a string that
// is not an address: the SHA-256 of its canonical form, so that its
// spellings share one budget and a key stays short however long the string
// (up to the request body limit) is.
func invalidEmailKey(email string) string {
	sum := sha256.Sum256([]byte(emailaddr.Normalize(email)))
	return "email-invalid:" + hex.EncodeToString(sum[:])
}

// NormalizeEmail returns the canonical form of an email (emailaddr.Normalize:
// trimmed, NFKC, case folded) and checks that it is one plain address of at
// most MaxEmailBytes; failures are a *FieldError for field "email". Every
// entry point (registration, login, user creation, Appwrite) goes through
// it, so one address is one account and one throttle key.
func NormalizeEmail(email string) (string, error) {
	if !utf8.ValidString(email) {
		return "", &FieldError{Field: "email", Message: "must be an email address of at most 254 bytes"}
	}
	e := emailaddr.Normalize(email)
	if e == "" || len(e) > MaxEmailBytes {
		return "", &FieldError{Field: "email", Message: "must be an email address of at most 254 bytes"}
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" {
		return "", &FieldError{Field: "email", Message: "must be a plain email address like name@example.com"}
	}
	return e, nil
}

func normalizeName(name string) (string, error) {
	n := strings.TrimSpace(name)
	if !utf8.ValidString(n) || utf8.RuneCountInString(n) > MaxNameChars ||
		strings.ContainsFunc(n, unicode.IsControl) {
		return "", &FieldError{Field: "name", Message: fmt.Sprintf("must be valid text of at most %d characters without control characters", MaxNameChars)}
	}
	return n, nil
}

// sortedRoles returns roles deduplicated in the order of Roles().
func sortedRoles(roles []Role) []Role {
	var out []Role
	for _, r := range Roles() {
		if slices.Contains(roles, r) {
			out = append(out, r)
		}
	}
	return out
}
