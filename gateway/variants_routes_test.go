package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kowai/kowai/persistence/persisttest"
)

// Variants are validated (names, weights, count, models of the catalog), stored
// with the agent, kept by a PUT that leaves them out and replaced or removed by
// PATCH.
func TestAgentVariantsField(t *testing.T) {
	db := persisttest.SQLite(t)
	env := startREST(t, restConfig{db: db, models: testModels(), budgets: testBudgets(t, db, nil)})
	tok := env.newUser(t, "alice@example.com", "user").pair.AccessToken
	agents := env.url + "/api/v1/agents"
	nine := make([]string, 9)
	for i := range nine {
		nine[i] = fmt.Sprintf(`{"name":"v%d","weight":1}`, i)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"duplicate names", `{"name":"a","type":"chat","variants":[{"name":"x","weight":1},{"name":"x","weight":2}]}`, http.StatusBadRequest, `"field":"variants[1].name"`},
		{"zero weight", `{"name":"a","type":"chat","variants":[{"name":"x","weight":0}]}`, http.StatusBadRequest, `"field":"variants[0].weight"`},
		{"bad name", `{"name":"a","type":"chat","variants":[{"name":"a b","weight":1}]}`, http.StatusBadRequest, `"field":"variants[0].name"`},
		{"too many", `{"name":"a","type":"chat","variants":[` + strings.Join(nine, ",") + `]}`, http.StatusBadRequest, `"field":"variants"`},
		{"unknown model", `{"name":"a","type":"chat","variants":[{"name":"x","weight":1,"model":"openai:gpt-5"}]}`, http.StatusUnprocessableEntity, `"field":"variants[0].model"`},
		{"premium model", `{"name":"a","type":"chat","variants":[{"name":"x","weight":1,"model":"openai:fancy"}]}`, http.StatusUnprocessableEntity, "models:premium"},
	} {
		r := call(t, http.MethodPost, agents, tok, tc.body)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}

	r := call(t, http.MethodPost, agents, tok, `{"name":"ab","type":"chat","variants":[{"name":"control","weight":70},{"name":"plain","weight":30,"model":"openai:plain","instructions":"Be brief."}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var ag agentView
	r.json(t, &ag)
	want := []agentVariant{{Name: "control", Weight: 70}, {Name: "plain", Weight: 30, Model: "openai:plain", Instructions: "Be brief."}}
	if fmt.Sprint(ag.Variants) != fmt.Sprint(want) {
		t.Fatalf("created variants %+v, want %+v", ag.Variants, want)
	}
	call(t, http.MethodGet, agents+"/"+ag.ID, tok, "").json(t, &ag)
	if fmt.Sprint(ag.Variants) != fmt.Sprint(want) {
		t.Fatalf("read variants %+v, want %+v", ag.Variants, want)
	}
	r = call(t, http.MethodPut, agents+"/"+ag.ID, tok, fmt.Sprintf(`{"name":"ab2","type":"chat","instructions":"","signature":"","model":"","config":{},"version":%d}`, ag.Version))
	r.json(t, &ag)
	if r.status != http.StatusOK || fmt.Sprint(ag.Variants) != fmt.Sprint(want) {
		t.Fatalf("PUT without variants: %d %s", r.status, r.body)
	}
	r = call(t, http.MethodPatch, agents+"/"+ag.ID, tok, fmt.Sprintf(`{"variants":[{"name":"only","weight":5}],"version":%d}`, ag.Version))
	r.json(t, &ag)
	if r.status != http.StatusOK || len(ag.Variants) != 1 || ag.Variants[0].Name != "only" {
		t.Fatalf("PATCH variants: %d %s", r.status, r.body)
	}
	r = call(t, http.MethodPatch, agents+"/"+ag.ID, tok, fmt.Sprintf(`{"variants":[{"name":"x","weight":1},{"name":"x","weight":1}],"version":%d}`, ag.Version))
	if r.status != http.StatusBadRequest {
		t.Fatalf("PATCH duplicate variants: %d %s", r.status, r.body)
	}
	r = call(t, http.MethodPatch, agents+"/"+ag.ID, tok, fmt.Sprintf(`{"variants":null,"version":%d}`, ag.Version))
	r.json(t, &ag)
	if r.status != http.StatusOK || len(ag.Variants) != 0 || !strings.Contains(string(r.body), `"variants":[]`) {
		t.Fatalf("PATCH variants null: %d %s", r.status, r.body)
	}
}
