package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
)

// testModels is a catalog over the offline default with one plain and one
// premium endpoint, never called.
func testModels() *lm.Catalog {
	eps := []lm.Endpoint{{Name: "openai:plain", InputPer1K: 0.001, OutputPer1K: 0.002}, {Name: "openai:fancy", Premium: true}}
	return lm.NewCatalog(lm.NewProvider("offline", "kowai-offline", offline.New()), lm.ModelInfo{}, eps,
		func(e lm.Endpoint) (lm.LM, error) {
			return lm.NewProvider(e.Spec().Provider, e.Spec().Model, offline.New()), nil
		})
}

// testBudgets is an in-process enforcer over db with roles' limits.
func testBudgets(t *testing.T, db *persistence.DB, roles map[string]budgets.Limits) *budgets.Enforcer {
	t.Helper()
	e, err := budgets.New(budgets.Config{Roles: roles, Users: persistence.NewUserStore(db), Ledger: persistence.NewUsageStore(db)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The model field is checked against the catalog on create, PUT and PATCH:
// unknown or (for a plain user) premium models are 422 naming the field, and
// other field errors stay 400.
func TestAgentModelField(t *testing.T) {
	db := persisttest.SQLite(t)
	env := startREST(t, restConfig{db: db, models: testModels(), budgets: testBudgets(t, db, nil)})
	tok := env.newUser(t, "alice@example.com", "user").pair.AccessToken
	for _, tc := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"name":"a","type":"chat","model":"openai:plain"}`, http.StatusCreated, ""},
		{`{"name":"a","type":"chat"}`, http.StatusCreated, ""},
		{`{"name":"a","type":"chat","model":"offline"}`, http.StatusCreated, ""},
		{`{"name":"a","type":"chat","model":"openai:gpt-5"}`, http.StatusUnprocessableEntity, `"field":"model"`},
		{`{"name":"a","type":"chat","model":"openai:fancy"}`, http.StatusUnprocessableEntity, "models:premium"},
		{`{"name":"a","type":"nope","model":"openai:gpt-5"}`, http.StatusBadRequest, `"field":"type"`},
	} {
		r := call(t, http.MethodPost, env.url+"/api/v1/agents", tok, tc.body)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s", tc.body, r.status, r.body)
		}
	}
	r := call(t, http.MethodGet, env.url+"/api/v1/models", tok, "")
	if r.status != http.StatusOK || strings.Contains(string(r.body), "fancy") || !strings.Contains(string(r.body), `"name":"openai:plain"`) {
		t.Fatalf("models: %d %s", r.status, r.body)
	}
	r = call(t, http.MethodGet, env.url+"/api/v1/users/me/usage", tok, "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"today":{`) {
		t.Fatalf("usage: %d %s", r.status, r.body)
	}
}
