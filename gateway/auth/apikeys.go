package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// APIKeyPrefix starts every API key; Bearer tokens with it are API keys, all
// others access tokens.
const APIKeyPrefix = "kowai_"

// apiKeyBytes is the entropy of a key's secret part (256 bits).
const apiKeyBytes = 32

// apiKeyShownChars is how much of a key listings show (the prefix and the
// first six characters of the secret): enough to tell keys apart, far too
// little to guess the rest.
const apiKeyShownChars = len(APIKeyPrefix) + 6

// MaxAPIKeysPerUser bounds the live keys of one user.
const MaxAPIKeysPerUser = 50

// ErrAPIKeyNotAllowed means a request authenticated with an API key tried
// something only a signed-in session may do, such as managing keys (403).
var ErrAPIKeyNotAllowed = errors.New("auth: API keys cannot do this; sign in")

// Scope is what an API key may do: a named set of permissions, which the key
// holds only where its user's roles grant them too.
type Scope string

// The scopes of API.md.
const (
	ScopeChat        Scope = "chat"
	ScopeAgentsRead  Scope = "agents:read"
	ScopeAgentsWrite Scope = "agents:write"
	ScopeWorkflows   Scope = "workflows"
)

// scopePermissions is the one table granting permissions to scopes. No scope
// grants an ":any" or admin permission: a key never reaches other users'
// data or the administration routes, whatever its user's roles.
var scopePermissions = map[Scope][]Permission{
	ScopeChat:        {PermChatRead, PermChatWrite, PermPremiumModels},
	ScopeAgentsRead:  {PermAgentsRead},
	ScopeAgentsWrite: {PermAgentsRead, PermAgentsWrite},
	ScopeWorkflows:   {PermWorkflowsRun},
}

// Scopes returns every scope in listing order.
func Scopes() []Scope { return []Scope{ScopeChat, ScopeAgentsRead, ScopeAgentsWrite, ScopeWorkflows} }

// ParseScopes validates names (at least one, each known) and returns them
// deduplicated in the order of Scopes; failures are a *FieldError for field
// "scopes".
func ParseScopes(names []string) ([]Scope, error) {
	if len(names) == 0 {
		return nil, &FieldError{Field: "scopes", Message: "must name at least one of chat, agents:read, agents:write, workflows"}
	}
	for _, n := range names {
		if _, ok := scopePermissions[Scope(n)]; !ok {
			return nil, &FieldError{Field: "scopes", Message: fmt.Sprintf("unknown scope %q (want chat, agents:read, agents:write or workflows)", n)}
		}
	}
	var out []Scope
	for _, s := range Scopes() {
		if slices.Contains(names, string(s)) {
			out = append(out, s)
		}
	}
	return out, nil
}

// APIKey is a key as its owner sees it; the secret is not part of it.
type APIKey struct {
	ID     string  `json:"id"`
	UserID string  `json:"-"`
	Name   string  `json:"name"`
	Prefix string  `json:"prefix" doc:"the key's first characters, to tell keys apart"`
	Scopes []Scope `json:"scopes"`
	// CreatedAt, ExpiresAt and LastUsedAt are zero when unset; LastUsedAt is
	// updated at most about once a minute.
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"-"`
}

// APIKeyStore is the API key repository. Implementations return ErrNotFound
// and ErrConflict (wrapped or bare) as documented.
type APIKeyStore interface {
	// CreateAPIKey stores k with the SHA-256 (hex) of its secret.
	CreateAPIKey(ctx context.Context, k APIKey, hash string) error
	// APIKeyByHash returns the key, revoked or not, or ErrNotFound.
	APIKeyByHash(ctx context.Context, hash string) (APIKey, error)
	// ListAPIKeys returns the live (unrevoked) keys of userID, newest first.
	ListAPIKeys(ctx context.Context, userID string) ([]APIKey, error)
	// RevokeAPIKey revokes userID's live key id; ErrNotFound when there is
	// none.
	RevokeAPIKey(ctx context.Context, userID, id string, at time.Time) error
	// TouchAPIKeys records when keys were last used (key ID -> time).
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error
}

// APIKeysConfig configures NewAPIKeys. Store and Users are required.
type APIKeysConfig struct {
	Store APIKeyStore
	// Users gives the key's user's current roles and state (normally the
	// *Service, whose Me answers from a short cache).
	Users UserLookup
	// CacheTTL is how long a node reuses a key it looked up; default (and
	// at most) 1 second: it bounds how long a revocation made on another
	// node can go unseen without Redis.
	CacheTTL time.Duration
	// Redis, when set, carries revocations to every node at once
	// (publish/subscribe on RedisChannel, default "kowai:apikeys:revoked");
	// the database stays the truth. Run subscribes.
	Redis        redis.UniversalClient
	RedisChannel string
	// TouchEvery is how often a key's last use is written; default 1 minute.
	TouchEvery time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives key events; nil discards them.
	Logger *slog.Logger
}

// APIKeys creates, lists, revokes and authenticates API keys. It is safe for
// concurrent use.
//
// Lifecycle: NewAPIKeys returns a usable value; Run (optional) writes
// last-use times in batches and, with Redis, listens for revocations from
// other nodes, until its context ends, when it writes what is pending.
type APIKeys struct {
	cfg   APIKeysConfig
	log   *slog.Logger
	cache *expiringMap[APIKey]
	group singleflight.Group

	mu      sync.Mutex
	touched map[string]time.Time // last use written or queued, per key
	pending map[string]time.Time // last uses not yet written
}

// NewAPIKeys validates cfg and returns the service.
func NewAPIKeys(cfg APIKeysConfig) (*APIKeys, error) {
	if cfg.Store == nil || cfg.Users == nil {
		return nil, fmt.Errorf("%w: APIKeys needs a Store and Users", ErrConfig)
	}
	if cfg.CacheTTL <= 0 || cfg.CacheTTL > time.Second {
		cfg.CacheTTL = time.Second
	}
	if cfg.TouchEvery <= 0 {
		cfg.TouchEvery = time.Minute
	}
	if cfg.RedisChannel == "" {
		cfg.RedisChannel = "kowai:apikeys:revoked"
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &APIKeys{cfg: cfg, log: cfg.Logger.With("component", "apikeys"),
		cache:   newExpiringMap[APIKey](100_000, cfg.CacheTTL),
		touched: map[string]time.Time{}, pending: map[string]time.Time{}}, nil
}

// HashAPIKey returns the lowercase hex SHA-256 of key, the only form in which
// keys are stored. A fast hash is enough: 256 random bits cannot be guessed
// offline.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// IsAPIKey reports whether a bearer token has the form of an API key.
func IsAPIKey(token string) bool {
	if !strings.HasPrefix(token, APIKeyPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token[len(APIKeyPrefix):])
	return err == nil && len(b) == apiKeyBytes
}

// NewAPIKey describes a key to create.
type NewAPIKey struct {
	Name      string
	Scopes    []string
	ExpiresAt time.Time // zero: never
}

// CreatedAPIKey is the answer to a creation: the only time the key is shown.
type CreatedAPIKey struct {
	APIKey
	// Key is the secret, shown once.
	Key string `json:"key" doc:"the key itself; shown only in this answer"`
}

// Create makes a key for p's user. Only a signed-in session may (a key
// cannot make keys: ErrAPIKeyNotAllowed). Every scope must be within p's
// permissions (ErrForbidden otherwise); bad input is a *FieldError.
func (k *APIKeys) Create(ctx context.Context, p Principal, nk NewAPIKey) (CreatedAPIKey, error) {
	if p.APIKeyID != "" {
		return CreatedAPIKey{}, ErrAPIKeyNotAllowed
	}
	name := strings.TrimSpace(nk.Name)
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameChars || strings.ContainsFunc(name, unicode.IsControl) {
		return CreatedAPIKey{}, &FieldError{Field: "name", Message: fmt.Sprintf("must be 1 to %d characters of text without control characters", MaxNameChars)}
	}
	scopes, err := ParseScopes(nk.Scopes)
	if err != nil {
		return CreatedAPIKey{}, err
	}
	for _, s := range scopes {
		for _, perm := range scopePermissions[s] {
			if perm != PermPremiumModels && !p.Can(perm) {
				return CreatedAPIKey{}, fmt.Errorf("%w: scope %s needs permission %s", ErrForbidden, s, perm)
			}
		}
	}
	now := k.cfg.Clock().UTC()
	if !nk.ExpiresAt.IsZero() && !nk.ExpiresAt.After(now) {
		return CreatedAPIKey{}, &FieldError{Field: "expires_at", Message: "must be in the future"}
	}
	live, err := k.cfg.Store.ListAPIKeys(ctx, p.UserID)
	if err != nil {
		return CreatedAPIKey{}, fmt.Errorf("auth: listing api keys: %w", err)
	}
	if len(live) >= MaxAPIKeysPerUser {
		return CreatedAPIKey{}, &FieldError{Field: "name", Message: fmt.Sprintf("a user may hold at most %d keys; revoke one first", MaxAPIKeysPerUser)}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return CreatedAPIKey{}, fmt.Errorf("auth: new api key id: %w", err)
	}
	b := make([]byte, apiKeyBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the program instead)
	secret := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	key := APIKey{ID: id.String(), UserID: p.UserID, Name: name, Prefix: secret[:apiKeyShownChars], Scopes: scopes, CreatedAt: now}
	if !nk.ExpiresAt.IsZero() {
		exp := nk.ExpiresAt.UTC()
		key.ExpiresAt = &exp
	}
	if err := k.cfg.Store.CreateAPIKey(ctx, key, HashAPIKey(secret)); err != nil {
		return CreatedAPIKey{}, fmt.Errorf("auth: storing api key: %w", err)
	}
	k.log.InfoContext(ctx, "api key created", "user_id", p.UserID, "key_id", key.ID, "prefix", key.Prefix, "scopes", scopes)
	return CreatedAPIKey{APIKey: key, Key: secret}, nil
}

// List returns p's live keys, newest first. A key cannot list keys.
func (k *APIKeys) List(ctx context.Context, p Principal) ([]APIKey, error) {
	if p.APIKeyID != "" {
		return nil, ErrAPIKeyNotAllowed
	}
	keys, err := k.cfg.Store.ListAPIKeys(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("auth: listing api keys: %w", err)
	}
	return keys, nil
}

// Revoke revokes p's key id: this node refuses it at once, the others at
// once through Redis when configured and within CacheTTL otherwise.
// ErrNotFound when p has no such live key; a key cannot revoke keys.
func (k *APIKeys) Revoke(ctx context.Context, p Principal, id string) error {
	if p.APIKeyID != "" {
		return ErrAPIKeyNotAllowed
	}
	if err := k.cfg.Store.RevokeAPIKey(ctx, p.UserID, id, k.cfg.Clock().UTC()); err != nil {
		return fmt.Errorf("auth: revoking api key %s: %w", id, err)
	}
	k.forget(id)
	if k.cfg.Redis != nil {
		if err := k.cfg.Redis.Publish(ctx, k.cfg.RedisChannel, id).Err(); err != nil {
			// The database has the revocation; other nodes see it within CacheTTL.
			k.log.WarnContext(ctx, "api key revocation not published", "key_id", id, "error", err)
		}
	}
	k.log.InfoContext(ctx, "api key revoked", "user_id", p.UserID, "key_id", id)
	return nil
}

// forget drops every cached lookup of key id.
func (k *APIKeys) forget(id string) {
	k.cache.deleteIf(func(key APIKey) bool { return key.ID == id })
}

// Authenticate turns an API key into a Principal: its user, the user's
// current roles, and the key's scopes, so that Principal.Can grants only
// what both allow. Unknown, revoked and expired keys, and keys of disabled
// or deleted users, are ErrInvalidToken.
func (k *APIKeys) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !IsAPIKey(token) {
		return Principal{}, fmt.Errorf("%w: malformed api key", ErrInvalidToken)
	}
	hash := HashAPIKey(token)
	now := k.cfg.Clock()
	key, ok := k.cache.get(hash, now)
	if !ok {
		var err error
		key, err = shared(ctx, &k.group, hash, func(ctx context.Context) (APIKey, error) {
			start := k.cfg.Clock()
			key, err := k.cfg.Store.APIKeyByHash(ctx, hash)
			if err != nil {
				return APIKey{}, err
			}
			if key.RevokedAt == nil {
				k.cache.put(hash, key, start.Add(k.cfg.CacheTTL), k.cfg.Clock())
			}
			return key, nil
		})
		if errors.Is(err, ErrNotFound) {
			return Principal{}, fmt.Errorf("%w: unknown api key", ErrInvalidToken)
		}
		if err != nil {
			return Principal{}, fmt.Errorf("auth: loading api key: %w", err)
		}
	}
	if key.RevokedAt != nil {
		return Principal{}, fmt.Errorf("%w: api key revoked", ErrInvalidToken)
	}
	if key.ExpiresAt != nil && !now.Before(*key.ExpiresAt) {
		return Principal{}, fmt.Errorf("%w: api key expired", ErrInvalidToken)
	}
	p := Principal{UserID: key.UserID, APIKeyID: key.ID, Scopes: key.Scopes}
	if key.ExpiresAt != nil {
		p.ExpiresAt = *key.ExpiresAt
	}
	u, err := k.cfg.Users.Me(ctx, p)
	if err != nil {
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, fmt.Errorf("%w: account disabled", ErrInvalidToken)
	}
	p.Roles = u.Roles
	k.used(key.ID, now)
	return p, nil
}

// used queues the key's last use when the last one written or queued is
// older than TouchEvery: one write per key and interval, not per request.
func (k *APIKeys) used(id string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if last, ok := k.touched[id]; ok && now.Sub(last) < k.cfg.TouchEvery {
		return
	}
	k.touched[id] = now
	k.pending[id] = now.UTC()
}

// Flush writes the queued last-use times in one transaction. On failure
// they are queued again. It also forgets the keys whose last use is older
// than TouchEvery, which used would queue anyway, so that touched holds only
// the keys in recent use rather than every key this node has ever seen.
func (k *APIKeys) Flush(ctx context.Context) error {
	now := k.cfg.Clock()
	k.mu.Lock()
	batch := k.pending
	k.pending = map[string]time.Time{}
	for id, last := range k.touched {
		if now.Sub(last) >= k.cfg.TouchEvery {
			delete(k.touched, id)
		}
	}
	k.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := k.cfg.Store.TouchAPIKeys(ctx, batch); err != nil {
		k.mu.Lock()
		for id, at := range batch {
			if _, ok := k.pending[id]; !ok {
				k.pending[id] = at
			}
		}
		k.mu.Unlock()
		return fmt.Errorf("auth: recording api key use: %w", err)
	}
	return nil
}

// Run writes last-use times every TouchEvery/2 and, with Redis, drops keys
// revoked on other nodes from this node's cache as the news arrives. It
// returns nil when ctx ends, after a last Flush.
func (k *APIKeys) Run(ctx context.Context) error {
	var msgs <-chan *redis.Message
	if k.cfg.Redis != nil {
		sub := k.cfg.Redis.Subscribe(ctx, k.cfg.RedisChannel)
		defer func() {
			if err := sub.Close(); err != nil {
				k.log.Warn("api key subscription close failed", "error", err)
			}
		}()
		msgs = sub.Channel()
	}
	tick := time.NewTicker(k.cfg.TouchEvery / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := k.Flush(fctx); err != nil {
				k.log.Warn("api key use not recorded", "error", err)
			}
			return nil
		case m := <-msgs:
			if m != nil {
				k.forget(m.Payload)
			}
		case <-tick.C:
			if err := k.Flush(ctx); err != nil {
				k.log.Warn("api key use not recorded", "error", err)
			}
		}
	}
}

// WithAPIKeys returns an Authenticator that hands Bearer tokens of the API
// key form to keys and every other token to tokens.
func WithAPIKeys(tokens Authenticator, keys *APIKeys) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, token string) (Principal, error) {
		if strings.HasPrefix(token, APIKeyPrefix) {
			return keys.Authenticate(ctx, token)
		}
		return tokens.Authenticate(ctx, token)
	})
}
