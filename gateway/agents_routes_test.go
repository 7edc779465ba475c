package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

func TestAgents(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	bob := env.newUser(t, "bob@example.com")
	admin := env.newUser(t, "admin@example.com", auth.RoleAdmin)
	builtin, err := env.stores.Agents.Create(t.Context(), persistence.Agent{Name: "Default", Type: "chat", Signature: "message -> response"})
	if err != nil {
		t.Fatal(err)
	}
	agents := env.url + "/api/v1/agents"

	r := call(t, http.MethodPost, agents, alice.pair.AccessToken, `{"name":" Helper ","type":"chat","signature":"message -> response","config":{"temperature":0.2}}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var mine agentView
	r.json(t, &mine)
	if mine.Name != "Helper" || mine.OwnerID == nil || *mine.OwnerID != alice.id || mine.Version != 1 || string(mine.Config) != `{"temperature":0.2}` {
		t.Fatalf("created %+v", mine)
	}
	bobs := call(t, http.MethodPost, agents, bob.pair.AccessToken, `{"name":"Bob's","type":"chat"}`)
	var theirs agentView
	bobs.json(t, &theirs)

	var page agentsPage
	call(t, http.MethodGet, agents, alice.pair.AccessToken, "").json(t, &page)
	var ids []string
	for _, a := range page.Agents {
		ids = append(ids, a.ID)
	}
	if len(ids) != 2 || !slices.Contains(ids, builtin.ID) || !slices.Contains(ids, mine.ID) {
		t.Fatalf("alice lists %v; want her agent and the built-in", ids)
	}
	if page.Agents[slices.Index(ids, builtin.ID)].OwnerID != nil {
		t.Fatal("a built-in has an owner_id")
	}

	var types agentTypesView
	call(t, http.MethodGet, agents+"/types", alice.pair.AccessToken, "").json(t, &types)
	if len(types.Types) != 1 || types.Types[0].Name != "chat" {
		t.Fatalf("types %+v", types)
	}

	one := func(id string) string { return agents + "/" + id }
	put := func(token string, a agentView, name string) reply {
		return call(t, http.MethodPut, one(a.ID), token, fmt.Sprintf(`{"name":%q,"type":"chat","instructions":"","signature":"","model":"","config":{},"version":%d}`, name, a.Version))
	}
	for _, tc := range []struct {
		name, method, url, token, body string
		status                         int
	}{
		{"unknown type", http.MethodPost, agents, alice.pair.AccessToken, `{"name":"x","type":"nope"}`, http.StatusBadRequest},
		{"bad signature", http.MethodPost, agents, alice.pair.AccessToken, `{"name":"x","type":"chat","signature":"no arrow"}`, http.StatusBadRequest},
		{"config not an object", http.MethodPost, agents, alice.pair.AccessToken, `{"name":"x","type":"chat","config":[1]}`, http.StatusBadRequest},
		{"empty name", http.MethodPost, agents, alice.pair.AccessToken, `{"name":"  ","type":"chat"}`, http.StatusBadRequest},
		{"read another user's agent", http.MethodGet, one(theirs.ID), alice.pair.AccessToken, "", http.StatusNotFound},
		{"change another user's agent", http.MethodPut, one(theirs.ID), alice.pair.AccessToken, `{"name":"x","type":"chat","instructions":"","signature":"","model":"","config":{},"version":1}`, http.StatusNotFound},
		{"patch another user's agent", http.MethodPatch, one(theirs.ID), alice.pair.AccessToken, `{"name":"x","version":1}`, http.StatusNotFound},
		{"delete another user's agent", http.MethodDelete, one(theirs.ID), alice.pair.AccessToken, "", http.StatusNotFound},
		{"change a built-in", http.MethodPut, one(builtin.ID), alice.pair.AccessToken, `{"name":"x","type":"chat","instructions":"","signature":"","model":"","config":{},"version":1}`, http.StatusForbidden},
		{"put without the optional fields", http.MethodPut, one(mine.ID), alice.pair.AccessToken, `{"name":"x","type":"chat","version":1}`, http.StatusBadRequest},
		{"patch without version", http.MethodPatch, one(mine.ID), alice.pair.AccessToken, `{"name":"x"}`, http.StatusBadRequest},
		{"patch removes the name", http.MethodPatch, one(mine.ID), alice.pair.AccessToken, `{"name":null,"version":1}`, http.StatusBadRequest},
		{"patch name not a string", http.MethodPatch, one(mine.ID), alice.pair.AccessToken, `{"name":5,"version":1}`, http.StatusBadRequest},
		{"patch to an unknown type", http.MethodPatch, one(mine.ID), alice.pair.AccessToken, `{"type":"nope","version":1}`, http.StatusBadRequest},
		{"patch unknown field", http.MethodPatch, one(mine.ID), alice.pair.AccessToken, `{"owner_id":"x","version":1}`, http.StatusBadRequest},
		{"name with a bidi override", http.MethodPost, agents, alice.pair.AccessToken, `{"name":"evil\u202Etxt.exe","type":"chat"}`, http.StatusBadRequest},
		{"name with a zero-width space", http.MethodPost, agents, alice.pair.AccessToken, `{"name":"ad\u200Bmin","type":"chat"}`, http.StatusBadRequest},
		{"delete a built-in", http.MethodDelete, one(builtin.ID), alice.pair.AccessToken, "", http.StatusForbidden},
		{"put without version", http.MethodPut, one(mine.ID), alice.pair.AccessToken, `{"name":"x","type":"chat"}`, http.StatusBadRequest},
		{"malformed id", http.MethodGet, one("not-a-uuid"), alice.pair.AccessToken, "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) { call(t, tc.method, tc.url, tc.token, tc.body).problem(t, tc.status) })
	}

	var got agentView
	call(t, http.MethodGet, one(mine.ID), alice.pair.AccessToken, "").json(t, &got)
	if got.ID != mine.ID || got.Name != "Helper" {
		t.Fatalf("get %+v", got)
	}
	r = put(alice.pair.AccessToken, mine, "Renamed")
	var updated agentView
	r.json(t, &updated)
	if r.status != http.StatusOK || updated.Version != 2 || updated.Name != "Renamed" {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	put(alice.pair.AccessToken, mine, "Stale").problem(t, http.StatusConflict)

	// Admins read and change anyone's agents and the built-ins.
	call(t, http.MethodGet, one(theirs.ID), admin.pair.AccessToken, "").json(t, &got)
	if got.ID != theirs.ID {
		t.Fatalf("admin read %+v", got)
	}
	if r := put(admin.pair.AccessToken, viewAgent(builtin), "Default v2"); r.status != http.StatusOK {
		t.Fatalf("admin update of a built-in: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodDelete, one(theirs.ID), admin.pair.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("admin delete: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodDelete, one(mine.ID), alice.pair.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("owner delete: %d %s", r.status, r.body)
	}
	call(t, http.MethodGet, one(mine.ID), alice.pair.AccessToken, "").problem(t, http.StatusNotFound)
	if want := []string{mine.ID, builtin.ID, theirs.ID, mine.ID}; !slices.Equal(env.agentsChanged(), want) {
		t.Fatalf("the agent writer changed %v, want %v", env.agentsChanged(), want)
	}
}

// PATCH changes only the fields it names (JSON merge patch, config merged key by key,
// null resetting an optional field), under the same version compare-and-swap as PUT.
func TestAgentPatch(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	agents := env.url + "/api/v1/agents"
	r := call(t, http.MethodPost, agents, alice.pair.AccessToken,
		`{"name":"Helper","type":"chat","instructions":"Be brief.","signature":"message -> response","model":"m1","config":{"temperature":0.2,"busy_policy":"enqueue"}}`)
	var ag agentView
	r.json(t, &ag)
	url := agents + "/" + ag.ID

	r = call(t, http.MethodPatch, url, alice.pair.AccessToken, `{"name":"Renamed","version":1}`)
	var got agentView
	r.json(t, &got)
	if r.status != http.StatusOK || got.Name != "Renamed" || got.Instructions != "Be brief." || got.Signature != "message -> response" ||
		got.Model != "m1" || canonicalJSON(t, got.Config) != `{"busy_policy":"enqueue","temperature":0.2}` || got.Version != 2 {
		t.Fatalf("rename by PATCH: %d %s", r.status, r.body)
	}
	r = call(t, http.MethodPatch, url, alice.pair.AccessToken, `{"model":null,"config":{"temperature":null,"max_tokens":64},"version":2}`)
	r.json(t, &got)
	if r.status != http.StatusOK || got.Name != "Renamed" || got.Instructions != "Be brief." || got.Model != "" ||
		canonicalJSON(t, got.Config) != `{"busy_policy":"enqueue","max_tokens":64}` || got.Version != 3 {
		t.Fatalf("second PATCH: %d %s", r.status, r.body)
	}
	call(t, http.MethodPatch, url, alice.pair.AccessToken, `{"name":"Stale","version":2}`).problem(t, http.StatusConflict)
	r = call(t, http.MethodPatch, url, alice.pair.AccessToken, `{"config":null,"version":3}`)
	r.json(t, &got)
	if r.status != http.StatusOK || canonicalJSON(t, got.Config) != `{}` || got.Instructions != "Be brief." {
		t.Fatalf("config reset: %d %s", r.status, r.body)
	}
}

// canonicalJSON re-encodes a JSON object with sorted keys.
func canonicalJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
