package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// Audit actions of API keys.
const (
	auditAPIKeyCreate = "apikey.create"
	auditAPIKeyRevoke = "apikey.revoke"
)

// AuthAPIKeys implements auth.APIKeyStore over persistence.
type AuthAPIKeys struct{ keys *persistence.APIKeyStore }

var _ auth.APIKeyStore = AuthAPIKeys{}

// NewAuthAPIKeys returns auth's API key store over db.
func NewAuthAPIKeys(db *persistence.DB) AuthAPIKeys {
	return AuthAPIKeys{keys: persistence.NewAPIKeyStore(db)}
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func authAPIKey(k persistence.APIKey) auth.APIKey {
	scopes := make([]auth.Scope, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = auth.Scope(s)
	}
	return auth.APIKey{ID: k.ID, UserID: k.UserID, Name: k.Name, Prefix: k.Prefix, Scopes: scopes, CreatedAt: k.CreatedAt,
		ExpiresAt: optionalTime(k.ExpiresAt), LastUsedAt: optionalTime(k.LastUsedAt), RevokedAt: optionalTime(k.RevokedAt)}
}

func zeroIfNil(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// CreateAPIKey implements auth.APIKeyStore.
func (s AuthAPIKeys) CreateAPIKey(ctx context.Context, k auth.APIKey, hash string) error {
	scopes := make([]string, len(k.Scopes))
	for i, sc := range k.Scopes {
		scopes[i] = string(sc)
	}
	return authError(s.keys.Create(ctx, persistence.APIKey{ID: k.ID, UserID: k.UserID, Name: k.Name, Prefix: k.Prefix, Hash: hash,
		Scopes: scopes, CreatedAt: k.CreatedAt, ExpiresAt: zeroIfNil(k.ExpiresAt)}))
}

// APIKeyByHash implements auth.APIKeyStore.
func (s AuthAPIKeys) APIKeyByHash(ctx context.Context, hash string) (auth.APIKey, error) {
	k, err := s.keys.GetByHash(ctx, hash)
	if err != nil {
		return auth.APIKey{}, authError(err)
	}
	return authAPIKey(k), nil
}

// ListAPIKeys implements auth.APIKeyStore.
func (s AuthAPIKeys) ListAPIKeys(ctx context.Context, userID string) ([]auth.APIKey, error) {
	keys, err := s.keys.ListByUser(ctx, userID)
	if err != nil {
		return nil, authError(err)
	}
	out := make([]auth.APIKey, len(keys))
	for i, k := range keys {
		out[i] = authAPIKey(k)
	}
	return out, nil
}

// RevokeAPIKey implements auth.APIKeyStore.
func (s AuthAPIKeys) RevokeAPIKey(ctx context.Context, userID, id string, at time.Time) error {
	return authError(s.keys.Revoke(ctx, userID, id, at))
}

// TouchAPIKeys implements auth.APIKeyStore.
func (s AuthAPIKeys) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	return authError(s.keys.TouchUsed(ctx, used))
}

// createAPIKeyRequest is the body of POST /api/v1/auth/api-keys.
type createAPIKeyRequest struct {
	Name      string     `json:"name" doc:"what the key is for, 1 to 100 characters"`
	Scopes    []string   `json:"scopes" doc:"one or more of chat, agents:read, agents:write, workflows"`
	ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"when the key stops working (RFC 3339, in the future); omitted: never"`
}

// Validate implements Validator; names and scopes are checked by the auth
// service, which owns their rules.
func (r createAPIKeyRequest) Validate() []FieldError {
	if len(r.Scopes) > 16 {
		return []FieldError{{Field: "scopes", Message: "must list at most 16 scopes"}}
	}
	return nil
}

// apiKeysPage is the body of GET /api/v1/auth/api-keys.
type apiKeysPage struct {
	APIKeys []auth.APIKey `json:"api_keys" doc:"your live keys, newest first; the secrets are never shown again"`
}

// apiKeyRoutes serves /api/v1/auth/api-keys.
type apiKeyRoutes struct {
	keys  *auth.APIKeys
	audit persistence.AuditLog
}

func (a apiKeyRoutes) create(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	req, err := Decode[createAPIKeyRequest](c)
	if err != nil {
		return err
	}
	nk := auth.NewAPIKey{Name: req.Name, Scopes: req.Scopes}
	if req.ExpiresAt != nil {
		nk.ExpiresAt = *req.ExpiresAt
	}
	created, err := a.keys.Create(c.UserContext(), p, nk)
	if err != nil {
		return authProblem(err)
	}
	if err := recordAudit(c, a.audit, p.UserID, auditAPIKeyCreate, "api_key", created.ID,
		map[string]any{"name": created.Name, "prefix": created.Prefix, "scopes": created.Scopes}); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusCreated).JSON(created)
}

func (a apiKeyRoutes) list(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	keys, err := a.keys.List(c.UserContext(), p)
	if err != nil {
		return authProblem(err)
	}
	if keys == nil {
		keys = []auth.APIKey{}
	}
	return c.JSON(apiKeysPage{APIKeys: keys})
}

func (a apiKeyRoutes) revoke(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	id := c.Params("id")
	if !isUUID(id) {
		return Validation(FieldError{Field: "id", Message: "must be a UUID"})
	}
	err = a.keys.Revoke(c.UserContext(), p, id)
	if errors.Is(err, auth.ErrNotFound) {
		return NewError(http.StatusNotFound, "you have no live API key with this ID")
	}
	if err != nil {
		return authProblem(err)
	}
	if err := recordAudit(c, a.audit, p.UserID, auditAPIKeyRevoke, "api_key", id, nil); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// sessionsOnly refuses API keys with 403 before they reach the
// authenticator: the routes it guards (account, sessions, API keys) need a
// signed-in session.
func sessionsOnly(a auth.Authenticator) auth.Authenticator {
	return auth.AuthenticatorFunc(func(ctx context.Context, token string) (auth.Principal, error) {
		if auth.IsAPIKey(token) {
			return auth.Principal{}, NewError(http.StatusForbidden, "API keys cannot manage the account or keys; sign in")
		}
		return a.Authenticate(ctx, token)
	})
}

// mountAPIKeys registers the API key routes; authed must refuse API keys
// (sessionsOnly).
func (s *Server) mountAPIKeys(a apiKeyRoutes, authed fiber.Handler, rl rateLimits) {
	s.Route(fiber.MethodPost, "/api/v1/auth/api-keys", Op{Summary: "Create an API key for machine clients; the key is shown only in this answer (signed-in sessions only, never with a key)", Tag: "Auth", Auth: true,
		Request: createAPIKeyRequest{}, Response: auth.CreatedAPIKey{}, Status: http.StatusCreated, Errors: []int{http.StatusBadRequest, http.StatusForbidden}},
		authed, rl.user("auth.apikeys.create"), a.create)
	s.Route(fiber.MethodGet, "/api/v1/auth/api-keys", Op{Summary: "Your live API keys (prefix, name, scopes, created, last used)", Tag: "Auth", Auth: true,
		Response: apiKeysPage{}, Errors: []int{http.StatusForbidden}},
		authed, rl.user("auth.apikeys.list"), a.list)
	s.Route(fiber.MethodDelete, "/api/v1/auth/api-keys/:id", Op{Summary: "Revoke one of your API keys; every node refuses it at once", Tag: "Auth", Auth: true,
		Status: http.StatusNoContent, Errors: []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}},
		authed, rl.user("auth.apikeys.revoke"), a.revoke)
}
