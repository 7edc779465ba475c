package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// MinSecretBytes is the shortest accepted HS256 secret.
const MinSecretBytes = 32

// TokenConfig configures NewTokens.
type TokenConfig struct {
	// Secret is the HS256 key; at least MinSecretBytes bytes.
	Secret []byte
	// Issuer and Audience are written to and required in every token.
	Issuer, Audience string
	// AccessTTL is the access token lifetime; default 15 minutes.
	AccessTTL time.Duration
	// Leeway tolerates clock skew between nodes when checking exp, nbf and
	// iat; default 30 seconds, at most one minute.
	Leeway time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// VerifyCacheEntries bounds the cache of verified tokens (default
	// DefaultVerifyCacheEntries); negative disables it. See Tokens.Verify.
	VerifyCacheEntries int
}

// Verified-token cache settings.
const (
	// DefaultVerifyCacheEntries bounds the verified-token cache.
	DefaultVerifyCacheEntries = 10_000
	// verifyCacheTTL caps how long one verification is reused, so entries
	// of tokens no longer presented make room within a minute.
	verifyCacheTTL = time.Minute
)

// Claims are the claims of a kowai access token.
type Claims struct {
	jwt.RegisteredClaims
	// Roles are the user's roles when the token was issued.
	Roles []Role `json:"roles"`
	// SessionID is the login session (refresh token family) the token
	// belongs to; revoking the session rejects the token.
	SessionID string `json:"sid"`
}

// Tokens issues and verifies access tokens.
type Tokens struct {
	cfg      TokenConfig
	parser   *jwt.Parser
	keyFunc  jwt.Keyfunc
	verified *expiringMap[verifiedToken] // nil when disabled
}

// verifiedToken is a token whose signature and claims passed Verify, with
// the earliest time its nbf and iat checks pass again (the clock may be set
// back); its expiry in the cache is when its exp check would fail, or
// sooner.
type verifiedToken struct {
	claims    Claims
	validFrom time.Time
}

// NewTokens validates cfg and returns a Tokens. It fails with ErrWeakSecret
// for a short secret and ErrConfig for other bad settings.
func NewTokens(cfg TokenConfig) (*Tokens, error) {
	if len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("%w (got %d)", ErrWeakSecret, len(cfg.Secret))
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, fmt.Errorf("%w: jwt issuer and audience must be set", ErrConfig)
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.AccessTTL < 0 || cfg.Leeway < 0 || cfg.Leeway > time.Minute {
		return nil, fmt.Errorf("%w: access TTL %s must be positive and leeway %s within 0..1m", ErrConfig, cfg.AccessTTL, cfg.Leeway)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	cfg.Secret = append([]byte(nil), cfg.Secret...)
	if cfg.VerifyCacheEntries == 0 {
		cfg.VerifyCacheEntries = DefaultVerifyCacheEntries
	}
	t := &Tokens{cfg: cfg}
	// One boxed key and one closure for every parse, not one per request.
	var key any = cfg.Secret
	t.keyFunc = func(*jwt.Token) (any, error) { return key, nil }
	if cfg.VerifyCacheEntries > 0 {
		t.verified = newExpiringMap[verifiedToken](cfg.VerifyCacheEntries, time.Second)
	}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Clock),
		jwt.WithStrictDecoding(),
	)
	return t, nil
}

// AccessTTL returns the access token lifetime.
func (t *Tokens) AccessTTL() time.Duration { return t.cfg.AccessTTL }

// Leeway returns the clock-skew tolerance used when verifying.
func (t *Tokens) Leeway() time.Duration { return t.cfg.Leeway }

// Issue signs an access token for userID in session sessionID.
func (t *Tokens) Issue(userID, sessionID string, roles []Role) (string, Claims, error) {
	now := t.cfg.Clock().Truncate(time.Second)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.cfg.Issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{t.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.cfg.AccessTTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Roles:     roles,
		SessionID: sessionID,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.cfg.Secret)
	if err != nil {
		return "", Claims{}, fmt.Errorf("auth: signing access token: %w", err)
	}
	return signed, claims, nil
}

// Verify checks an access token strictly: HS256 only (no "none", no other
// algorithm), signature, iss, aud, exp (required), nbf and iat within the
// leeway, non-empty sub, sid and jti, and known roles. It does not consult
// revocation; Service.Authenticate does. Every failure wraps ErrInvalidToken.
//
// A token that passed is remembered (bounded, for at most a minute): the
// same string presented again is accepted after re-checking only exp, nbf
// and iat against the clock, the parts of the verdict that depend on
// anything but its bytes and the secret. Refused tokens are never
// remembered.
func (t *Tokens) Verify(token string) (Claims, error) {
	now := t.cfg.Clock()
	if t.verified != nil {
		if v, ok := t.verified.get(token, now); ok && !now.Before(v.validFrom) {
			c := v.claims
			c.Roles = slices.Clone(c.Roles)
			return c, nil
		}
	}
	c, err := t.verify(token)
	if err != nil {
		return Claims{}, err
	}
	if t.verified != nil {
		t.remember(token, c, now)
	}
	return c, nil
}

// remember caches a verified token until its exp check would fail (capped
// at verifyCacheTTL), from the moment its nbf and iat checks pass.
func (t *Tokens) remember(token string, c Claims, now time.Time) {
	until := c.ExpiresAt.Add(t.cfg.Leeway)
	if limit := now.Add(verifyCacheTTL); limit.Before(until) {
		until = limit
	}
	var from time.Time
	for _, d := range []*jwt.NumericDate{c.NotBefore, c.IssuedAt} {
		if d != nil && d.Add(-t.cfg.Leeway).After(from) {
			from = d.Add(-t.cfg.Leeway)
		}
	}
	c.Roles = slices.Clone(c.Roles)
	t.verified.put(token, verifiedToken{claims: c, validFrom: from}, until, now)
}

func (t *Tokens) verify(token string) (Claims, error) {
	var c Claims
	_, err := t.parser.ParseWithClaims(token, &c, t.keyFunc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.SessionID == "" || c.ID == "" {
		return Claims{}, fmt.Errorf("%w: sub, sid and jti are required", ErrInvalidToken)
	}
	for _, r := range c.Roles {
		if _, err := ParseRole(string(r)); err != nil {
			return Claims{}, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, r)
		}
	}
	return c, nil
}

// Principal returns the caller these claims describe.
func (c Claims) Principal() Principal {
	p := Principal{UserID: c.Subject, SessionID: c.SessionID, TokenID: c.ID, Roles: c.Roles}
	if c.ExpiresAt != nil {
		p.ExpiresAt = c.ExpiresAt.Time
	}
	return p
}

// refreshTokenBytes is the entropy of a refresh token.
const refreshTokenBytes = 32

// NewRefreshToken returns a fresh opaque refresh token (32 random bytes,
// base64url without padding) and the hash to store in its place.
func NewRefreshToken() (token, hash string) {
	b := make([]byte, refreshTokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the program instead)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashRefreshToken(token)
}

// HashRefreshToken returns the lowercase hex SHA-256 of token, the only form
// in which refresh tokens are stored. A fast hash is enough: the token has
// 256 bits of entropy, so there is nothing to guess offline.
func HashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormedRefreshToken reports whether token could have come from
// NewRefreshToken, so garbage never reaches the store.
func wellFormedRefreshToken(token string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	return err == nil && len(b) == refreshTokenBytes
}
