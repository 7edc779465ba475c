package auth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
)

// fakeKeys is an in-memory auth.APIKeyStore that counts last-use writes.
type fakeKeys struct {
	mu      sync.Mutex
	keys    map[string]auth.APIKey // by hash
	touches int
	used    map[string]time.Time
}

var _ auth.APIKeyStore = (*fakeKeys)(nil)

func newFakeKeys() *fakeKeys {
	return &fakeKeys{keys: map[string]auth.APIKey{}, used: map[string]time.Time{}}
}

func (f *fakeKeys) CreateAPIKey(_ context.Context, k auth.APIKey, hash string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.keys[hash]; ok {
		return auth.ErrConflict
	}
	f.keys[hash] = k
	return nil
}

func (f *fakeKeys) APIKeyByHash(_ context.Context, hash string) (auth.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[hash]
	if !ok {
		return auth.APIKey{}, auth.ErrNotFound
	}
	return k, nil
}

func (f *fakeKeys) ListAPIKeys(_ context.Context, userID string) ([]auth.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []auth.APIKey
	for _, k := range f.keys {
		if k.UserID == userID && k.RevokedAt == nil {
			out = append(out, k)
		}
	}
	return out, nil
}

func (f *fakeKeys) RevokeAPIKey(_ context.Context, userID, id string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for h, k := range f.keys {
		if k.ID == id && k.UserID == userID && k.RevokedAt == nil {
			k.RevokedAt = &at
			f.keys[h] = k
			return nil
		}
	}
	return auth.ErrNotFound
}

func (f *fakeKeys) TouchAPIKeys(_ context.Context, used map[string]time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touches += len(used)
	for id, at := range used {
		f.used[id] = at
	}
	return nil
}

// fakeUsers answers Me with a user of the given roles.
type fakeUsers struct{ roles []auth.Role }

var _ auth.UserLookup = fakeUsers{}

func (u fakeUsers) Me(_ context.Context, p auth.Principal) (auth.User, error) {
	return auth.User{ID: p.UserID, Roles: u.roles}, nil
}

func TestAPIKeyPrincipal(t *testing.T) {
	now := time.Now()
	store := newFakeKeys()
	keys, err := auth.NewAPIKeys(auth.APIKeysConfig{Store: store, Users: fakeUsers{roles: []auth.Role{auth.RoleAdmin}}, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	session := auth.Principal{UserID: "u1", SessionID: "s1", Roles: []auth.Role{auth.RoleAdmin}}
	k, err := keys.Create(t.Context(), session, auth.NewAPIKey{Name: "ci", Scopes: []string{"agents:write", "chat"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Create(t.Context(), auth.Principal{UserID: "u1", APIKeyID: k.ID}, auth.NewAPIKey{Name: "x", Scopes: []string{"chat"}}); !errors.Is(err, auth.ErrAPIKeyNotAllowed) {
		t.Fatalf("a key making a key: %v", err)
	}
	p, err := keys.Authenticate(t.Context(), k.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		perm auth.Permission
		want bool
	}{
		{auth.PermChatWrite, true}, {auth.PermAgentsWrite, true}, {auth.PermAgentsRead, true},
		{auth.PermWorkflowsRun, false}, {auth.PermAdminUsers, false}, {auth.PermAdminCluster, false},
		{auth.PermChatReadAny, false}, {auth.PermAgentsWriteAny, false},
	} {
		if got := p.Can(tt.perm); got != tt.want {
			t.Errorf("an admin's chat+agents:write key: Can(%s) = %v, want %v", tt.perm, got, tt.want)
		}
	}
	if p.HasRole(auth.RoleAdmin) || p.HasRole(auth.RoleModerator) {
		t.Errorf("an admin's key holds an administrative role: %+v", p)
	}
	if p.UserID != "u1" || p.APIKeyID != k.ID || p.SessionID != "" {
		t.Errorf("principal %+v", p)
	}
	if strings.Contains(k.Prefix, k.Key[len(k.Prefix):]) || len(k.Prefix) > 12 {
		t.Errorf("prefix %q shows too much", k.Prefix)
	}
}

// TestAPIKeyLastUseBatched authenticates a key many times: its last use is
// written once per TouchEvery, in one batch, never per request.
func TestAPIKeyLastUseBatched(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store := newFakeKeys()
	keys, err := auth.NewAPIKeys(auth.APIKeysConfig{Store: store, Users: fakeUsers{roles: []auth.Role{auth.RoleUser}}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.Create(t.Context(), auth.Principal{UserID: "u1", Roles: []auth.Role{auth.RoleUser}}, auth.NewAPIKey{Name: "ci", Scopes: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := keys.Authenticate(t.Context(), k.Key); err != nil {
			t.Fatal(err)
		}
		// Flushing often (as a busy node's Run might) must not write more.
		if err := keys.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if store.touches != 1 {
		t.Fatalf("%d last-use writes for 100 requests, want 1", store.touches)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := keys.Authenticate(t.Context(), k.Key); err != nil {
		t.Fatal(err)
	}
	if err := keys.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if store.touches != 2 || !store.used[k.ID].Equal(now.UTC()) {
		t.Fatalf("after a minute: %d writes, last use %v", store.touches, store.used[k.ID])
	}
}

// TestAPIKeyCacheAtMostASecond revokes a key behind the cache's back (as
// another node does): the key is refused once a second has passed, whatever
// CacheTTL asked for.
func TestAPIKeyCacheAtMostASecond(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store := newFakeKeys()
	keys, err := auth.NewAPIKeys(auth.APIKeysConfig{Store: store, Users: fakeUsers{roles: []auth.Role{auth.RoleUser}}, Clock: clock, CacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	owner := auth.Principal{UserID: "u1", Roles: []auth.Role{auth.RoleUser}}
	k, err := keys.Create(t.Context(), owner, auth.NewAPIKey{Name: "ci", Scopes: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(t.Context(), k.Key); err != nil {
		t.Fatal(err)
	}
	if err := store.RevokeAPIKey(t.Context(), "u1", k.ID, now); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if _, err := keys.Authenticate(t.Context(), k.Key); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("a key revoked a second ago: %v, want ErrInvalidToken", err)
	}
}

// TestAPIKeyRevokeRefusedAtOnce: a key revoked through this node is refused
// by this node at once, although its lookup is cached and the clock has not
// moved.
func TestAPIKeyRevokeRefusedAtOnce(t *testing.T) {
	now := time.Now()
	store := newFakeKeys()
	keys, err := auth.NewAPIKeys(auth.APIKeysConfig{Store: store, Users: fakeUsers{roles: []auth.Role{auth.RoleUser}}, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	owner := auth.Principal{UserID: "u1", Roles: []auth.Role{auth.RoleUser}}
	var created []auth.CreatedAPIKey
	for _, name := range []string{"revoked", "kept"} {
		k, err := keys.Create(t.Context(), owner, auth.NewAPIKey{Name: name, Scopes: []string{"chat"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Authenticate(t.Context(), k.Key); err != nil {
			t.Fatal(err)
		}
		created = append(created, k)
	}
	if err := keys.Revoke(t.Context(), owner, created[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(t.Context(), created[0].Key); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("a key revoked on this node: %v, want ErrInvalidToken at once", err)
	}
	if _, err := keys.Authenticate(t.Context(), created[1].Key); err != nil {
		t.Fatalf("another key of the same user after the revocation: %v", err)
	}
}

// TestCurrentAPIKeyLooksUpUserOnce: a WebSocket checks its token before every
// message; for an API key, APIKeys.Authenticate already read the user's
// current record, and Current must not read it a second time.
func TestCurrentAPIKeyLooksUpUserOnce(t *testing.T) {
	var mu sync.Mutex
	lookups := 0
	users := lookupFunc(func(_ context.Context, p auth.Principal) (auth.User, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		return auth.User{ID: p.UserID, Roles: []auth.Role{auth.RoleUser}}, nil
	})
	keys, err := auth.NewAPIKeys(auth.APIKeysConfig{Store: newFakeKeys(), Users: users})
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.Create(t.Context(), auth.Principal{UserID: "u1", Roles: []auth.Role{auth.RoleUser}}, auth.NewAPIKey{Name: "ws", Scopes: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.AuthenticatorFunc(func(context.Context, string) (auth.Principal, error) {
		return auth.Principal{}, auth.ErrInvalidToken
	})
	p, err := auth.Current(t.Context(), auth.WithAPIKeys(tokens, keys), users, k.Key)
	if err != nil {
		t.Fatal(err)
	}
	if p.APIKeyID != k.ID || !slices.Equal(p.Roles, []auth.Role{auth.RoleUser}) {
		t.Fatalf("principal %+v", p)
	}
	if lookups != 1 {
		t.Fatalf("%d user lookups for one check of an API key, want 1", lookups)
	}
}
