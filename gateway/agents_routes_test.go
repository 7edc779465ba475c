package gateway

import (
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
		return call(t, http.MethodPut, one(a.ID), token, fmt.Sprintf(`{"name":%q,"type":"chat","version":%d}`, name, a.Version))
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
		{"change another user's agent", http.MethodPut, one(theirs.ID), alice.pair.AccessToken, `{"name":"x","type":"chat","version":1}`, http.StatusNotFound},
		{"delete another user's agent", http.MethodDelete, one(theirs.ID), alice.pair.AccessToken, "", http.StatusNotFound},
		{"change a built-in", http.MethodPut, one(builtin.ID), alice.pair.AccessToken, `{"name":"x","type":"chat","version":1}`, http.StatusForbidden},
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
		t.Fatalf("OnAgentChanged saw %v, want %v", env.agentsChanged(), want)
	}
}
