package gateway

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

func TestAdminUsers(t *testing.T) {
	env := startREST(t, restConfig{})
	admin := env.newUser(t, "admin@example.com", auth.RoleAdmin)
	mod := env.newUser(t, "mod@example.com", auth.RoleModerator)
	alice := env.newUser(t, "alice@example.com")
	users := env.url + "/api/v1/admin/users"

	var page adminUsersPage
	call(t, http.MethodGet, users, mod.pair.AccessToken, "").json(t, &page)
	if len(page.Users) != 3 {
		t.Fatalf("moderator lists %+v", page)
	}
	for _, tc := range []struct {
		name, method, url, token, body string
		status                         int
	}{
		{"users do not list users", http.MethodGet, users, alice.pair.AccessToken, "", http.StatusForbidden},
		{"moderators do not change roles", http.MethodPut, users + "/" + alice.id + "/roles", mod.pair.AccessToken, `{"roles":["admin"]}`, http.StatusForbidden},
		{"moderators do not delete", http.MethodDelete, users + "/" + alice.id, mod.pair.AccessToken, "", http.StatusForbidden},
		{"unknown role", http.MethodPut, users + "/" + alice.id + "/roles", admin.pair.AccessToken, `{"roles":["root"]}`, http.StatusBadRequest},
		{"no roles", http.MethodPut, users + "/" + alice.id + "/roles", admin.pair.AccessToken, `{"roles":[]}`, http.StatusBadRequest},
		{"unknown user", http.MethodPut, users + "/0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e/roles", admin.pair.AccessToken, `{"roles":["user"]}`, http.StatusNotFound},
		{"the last admin keeps the role", http.MethodPut, users + "/" + admin.id + "/roles", admin.pair.AccessToken, `{"roles":["user"]}`, http.StatusConflict},
		{"admins do not delete themselves", http.MethodDelete, users + "/" + admin.id, admin.pair.AccessToken, "", http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) { call(t, tc.method, tc.url, tc.token, tc.body).problem(t, tc.status) })
	}

	// Moderators read the cluster (the console's Cluster page); users do not.
	var modView struct {
		Members []any `json:"members"`
	}
	if r := call(t, http.MethodGet, env.url+"/api/v1/admin/cluster", mod.pair.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("moderator reads the cluster: %d %s", r.status, r.body)
	} else if r.json(t, &modView); len(modView.Members) == 0 {
		t.Fatalf("moderator's cluster view has no members: %s", r.body)
	}
	call(t, http.MethodGet, env.url+"/api/v1/admin/cluster", alice.pair.AccessToken, "").problem(t, http.StatusForbidden)

	r := call(t, http.MethodPut, users+"/"+alice.id+"/roles", admin.pair.AccessToken, `{"roles":["premium","user","premium"]}`)
	var changed adminUser
	r.json(t, &changed)
	if r.status != http.StatusOK || len(changed.Roles) != 2 || changed.Roles[0] != "user" || changed.Roles[1] != "premium" {
		t.Fatalf("set roles: %d %s", r.status, r.body)
	}
	// Her old token carried the old roles; it stops working at once.
	call(t, http.MethodGet, env.url+"/api/v1/auth/me", alice.pair.AccessToken, "").problem(t, http.StatusUnauthorized)
	var me auth.PublicUser
	call(t, http.MethodGet, env.url+"/api/v1/auth/me", env.login(t, alice.email, alice.password).AccessToken, "").json(t, &me)
	if len(me.Roles) != 2 {
		t.Fatalf("roles after change: %v", me.Roles)
	}

	var cluster map[string]any
	call(t, http.MethodGet, env.url+"/api/v1/admin/cluster", admin.pair.AccessToken, "").json(t, &cluster)
	if cluster["node"] != "n1" {
		t.Fatalf("cluster %v", cluster)
	}

	fresh := env.login(t, mod.email, mod.password)
	if r := call(t, http.MethodDelete, users+"/"+mod.id, admin.pair.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	call(t, http.MethodGet, env.url+"/api/v1/auth/me", fresh.AccessToken, "").problem(t, http.StatusUnauthorized)
	if _, err := env.stores.Users.Get(t.Context(), mod.id); err == nil {
		t.Fatal("deleted user still stored")
	}

	log, err := env.stores.Audit.List(t.Context(), persistence.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The auth service records the sign-ins and account creations too.
	actions := map[string]persistence.AuditEntry{}
	n := 0
	for _, e := range log.Items {
		if e.Action == auditRolesSet || e.Action == auditUserDelete {
			actions[e.Action] = e
			n++
		}
	}
	if n != 2 {
		t.Fatalf("audit log has %d admin entries, want 2: %+v", n, log.Items)
	}
	roles, del := actions[auditRolesSet], actions[auditUserDelete]
	if roles.ActorID != admin.id || roles.TargetID != alice.id || del.ActorID != admin.id || del.TargetID != mod.id {
		t.Fatalf("audit entries %+v", log.Items)
	}
	var detail struct{ From, To []string }
	if err := json.Unmarshal(roles.Detail, &detail); err != nil || len(detail.From) != 1 || len(detail.To) != 2 {
		t.Fatalf("roles audit detail %s: %v", roles.Detail, err)
	}
	// An admin's delete is the full erasure: its entry counts what went and
	// keeps the roles, never the email of the erased person.
	var erased map[string]any
	if err := json.Unmarshal(del.Detail, &erased); err != nil || erased["email"] != nil || erased["conversations"] == nil || erased["roles"] == nil {
		t.Fatalf("delete audit detail %s: %v", del.Detail, err)
	}
}

// TestWorkflowsWithoutEngine: a node mounted without a workflow engine
// answers its workflow routes with 503 (after authentication and validation).
func TestWorkflowsWithoutEngine(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	run := "0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e"
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{http.MethodGet, "/api/v1/workflows", "", http.StatusServiceUnavailable},
		{http.MethodPost, "/api/v1/workflows/trigger", `{"name":"report","parameters":{}}`, http.StatusServiceUnavailable},
		{http.MethodGet, "/api/v1/workflows/" + run + "/status", "", http.StatusServiceUnavailable},
		{http.MethodPost, "/api/v1/workflows/" + run + "/cancel", "", http.StatusServiceUnavailable},
		{http.MethodGet, "/api/v1/users/me/profile", "", http.StatusServiceUnavailable},
		{http.MethodGet, "/api/v1/workflows/schedules", "", http.StatusServiceUnavailable},
		{http.MethodPost, "/api/v1/workflows/schedules", `{"workflow":"report","spec":"@hourly"}`, http.StatusServiceUnavailable},
		{http.MethodGet, "/api/v1/workflows/schedules/" + run, "", http.StatusServiceUnavailable},
		{http.MethodDelete, "/api/v1/workflows/schedules/" + run, "", http.StatusServiceUnavailable},
		{http.MethodGet, "/api/v1/workflows/schedules/not-a-uuid", "", http.StatusBadRequest},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			call(t, tc.method, env.url+tc.path, alice.pair.AccessToken, tc.body).problem(t, tc.status)
			call(t, tc.method, env.url+tc.path, "", tc.body).problem(t, http.StatusUnauthorized)
		})
	}
}

// TestAdminAudit: admins page the audit log newest first; users and
// moderators are refused.
func TestAdminAudit(t *testing.T) {
	env := startREST(t, restConfig{})
	admin := env.newUser(t, "admin@example.com", auth.RoleAdmin)
	mod := env.newUser(t, "mod@example.com", auth.RoleModerator)
	alice := env.newUser(t, "alice@example.com")
	audit := env.url + "/api/v1/admin/audit"
	for _, token := range []string{alice.pair.AccessToken, mod.pair.AccessToken} {
		call(t, http.MethodGet, audit, token, "").problem(t, http.StatusForbidden)
	}
	call(t, http.MethodGet, audit, "", "").problem(t, http.StatusUnauthorized)
	call(t, http.MethodGet, audit+"?cursor=nonsense", admin.pair.AccessToken, "").problem(t, http.StatusBadRequest)

	// Two changes, the roles one first.
	users := env.url + "/api/v1/admin/users/"
	if r := call(t, http.MethodPut, users+alice.id+"/roles", admin.pair.AccessToken, `{"roles":["premium"]}`); r.status != http.StatusOK {
		t.Fatalf("set roles: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodDelete, users+mod.id, admin.pair.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	var first auditPage
	r := call(t, http.MethodGet, audit+"?limit=1", admin.pair.AccessToken, "")
	r.json(t, &first)
	if r.status != http.StatusOK || len(first.Entries) != 1 || first.NextCursor == "" {
		t.Fatalf("first page: %d %s", r.status, r.body)
	}
	e := first.Entries[0]
	if e.Action != auditUserDelete || e.ActorID != admin.id || e.TargetType != "user" || e.TargetID != mod.id || e.IP == "" || e.CreatedAt.IsZero() {
		t.Fatalf("newest entry %+v, want the deletion", e)
	}
	var detail map[string]any
	if err := json.Unmarshal(e.Detail, &detail); err != nil || detail["roles"] == nil {
		t.Fatalf("detail %s: %v", e.Detail, err)
	}
	var second auditPage
	call(t, http.MethodGet, audit+"?limit=1&cursor="+first.NextCursor, admin.pair.AccessToken, "").json(t, &second)
	if len(second.Entries) != 1 || second.Entries[0].Action != auditRolesSet || second.Entries[0].TargetID != alice.id {
		t.Fatalf("second page %+v, want the role change", second)
	}
}

// TestAdminFigures: admins and moderators read this node's turn, error and
// cost counters from its metrics registry; users are refused.
func TestAdminFigures(t *testing.T) {
	env := startREST(t, restConfig{})
	admin := env.newUser(t, "admin@example.com", auth.RoleAdmin)
	mod := env.newUser(t, "mod@example.com", auth.RoleModerator)
	alice := env.newUser(t, "alice@example.com")
	figures := env.url + "/api/v1/admin/figures"
	call(t, http.MethodGet, figures, alice.pair.AccessToken, "").problem(t, http.StatusForbidden)
	if r := call(t, http.MethodGet, figures, mod.pair.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("moderator reads the figures: %d %s", r.status, r.body)
	}

	var zero nodeFigures
	call(t, http.MethodGet, figures, admin.pair.AccessToken, "").json(t, &zero)
	if zero.Turns != 0 || zero.TurnErrors != 0 || zero.ModelCostUSD != 0 || zero.At.IsZero() {
		t.Fatalf("figures of an idle node: %+v", zero)
	}
	reg := env.server.opts.Registry
	turns := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_chat_turns_total", Help: "t"}, []string{"outcome"})
	llmErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_llm_errors_total", Help: "e"}, []string{"provider", "kind"})
	cost := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kowai_llm_cost_usd_total", Help: "c"}, []string{"provider"})
	for _, c := range []prometheus.Collector{turns, llmErrors, cost} {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	turns.WithLabelValues("ok").Add(3)
	turns.WithLabelValues("replayed").Add(2)
	turns.WithLabelValues("timeout").Add(1)
	turns.WithLabelValues("model_failure").Add(1)
	llmErrors.WithLabelValues("openai", "timeout").Add(2)
	llmErrors.WithLabelValues("anthropic", "rate_limited").Add(1)
	cost.WithLabelValues("openai").Add(0.25)
	cost.WithLabelValues("anthropic").Add(0.5)
	var got nodeFigures
	r := call(t, http.MethodGet, figures, admin.pair.AccessToken, "")
	r.json(t, &got)
	if got.Turns != 7 || got.TurnErrors != 2 || got.ModelErrors != 3 || got.ModelCostUSD != 0.75 || !got.At.After(zero.At) && !got.At.Equal(zero.At) {
		t.Fatalf("figures %s, want 7 turns, 2 turn errors, 3 model errors, 0.75 USD", r.body)
	}
}

// TestAdminFiguresToday: the figures carry every user's model usage since
// midnight UTC from the usage ledger (what other nodes charged included), and
// nothing of yesterday.
func TestAdminFiguresToday(t *testing.T) {
	env := startREST(t, restConfig{})
	admin := env.newUser(t, "admin@example.com", auth.RoleAdmin)
	alice := env.newUser(t, "alice@example.com")
	bob := env.newUser(t, "bob@example.com")
	figures := env.url + "/api/v1/admin/figures"
	var idle nodeFigures
	call(t, http.MethodGet, figures, admin.pair.AccessToken, "").json(t, &idle)
	if idle.Today == nil || idle.Today.Tokens != 0 || idle.Today.CostUSD != 0 || !idle.Today.Since.Equal(idle.At.Truncate(24*time.Hour)) {
		t.Fatalf("today of an idle cluster: %+v", idle.Today)
	}
	ledger := persistence.NewUsageStore(env.db)
	now := time.Now().UTC()
	for _, e := range []persistence.UsageEntry{
		{UserID: alice.id, PromptTokens: 10, CompletionTokens: 5, CostUSD: 0.25, CreatedAt: now},
		{UserID: bob.id, PromptTokens: 100, CompletionTokens: 20, CostUSD: 1.5, CreatedAt: now},
		{UserID: bob.id, PromptTokens: 7000, CompletionTokens: 7000, CostUSD: 40, CreatedAt: now.Truncate(24 * time.Hour).Add(-time.Second)},
	} {
		e.AgentID, e.Model = "chat", "offline"
		if err := ledger.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	var got nodeFigures
	r := call(t, http.MethodGet, figures, admin.pair.AccessToken, "")
	r.json(t, &got)
	if got.Today == nil || got.Today.Tokens != 135 || got.Today.CostUSD != 1.75 {
		t.Fatalf("figures %s, want today 135 tokens and 1.75 USD", r.body)
	}
}
