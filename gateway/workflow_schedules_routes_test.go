package gateway

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

func startSchedules(t *testing.T, db *persistence.DB) *restEnv {
	t.Helper()
	reg := workflows.NewRegistry()
	if err := workflows.Register(reg, "greet", func(c *workflows.Context, p struct {
		Name string `json:"name"`
	}) (string, error) {
		return "hi " + p.Name, nil
	}); err != nil {
		t.Fatal(err)
	}
	return startREST(t, restConfig{db: db, workflows: &Workflows{Registry: reg, Runs: persistence.NewWorkflowStore(db),
		Schedules: persistence.NewWorkflowScheduleStore(db)}})
}

func TestScheduleCRUD(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		env := startSchedules(t, db)
		ada := env.newUser(t, "ada-sched-"+db.Dialect+"@example.com")
		bob := env.newUser(t, "bob-sched-"+db.Dialect+"@example.com")
		root := env.newUser(t, "root-sched-"+db.Dialect+"@example.com", auth.RoleAdmin)
		base := env.url + "/api/v1/workflows/schedules"

		before := time.Now()
		r := call(t, http.MethodPost, base, ada.pair.AccessToken, `{"workflow":"greet","parameters":{"name":"x"},"spec":"*/5 * * * *","catch_up":"run_once"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		var sc scheduleView
		r.json(t, &sc)
		if sc.OwnerID != ada.id || !sc.Enabled || sc.Timezone != "UTC" || sc.CatchUp != "run_once" || sc.NextFireAt == nil ||
			!sc.NextFireAt.After(before) || sc.NextFireAt.Minute()%5 != 0 || sc.NextFireAt.After(before.Add(5*time.Minute)) {
			t.Fatalf("created %+v", sc)
		}
		one := base + "/" + sc.ID
		if r := call(t, http.MethodGet, one, ada.pair.AccessToken, ""); r.status != http.StatusOK {
			t.Fatalf("get: %d %s", r.status, r.body)
		}

		// Another user sees nothing of it; an admin sees it.
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			call(t, m, one, bob.pair.AccessToken, "").problem(t, http.StatusNotFound)
		}
		call(t, http.MethodPut, one, bob.pair.AccessToken, `{"workflow":"greet","parameters":{"name":"y"},"spec":"@hourly"}`).problem(t, http.StatusNotFound)
		var list schedulesView
		call(t, http.MethodGet, base, bob.pair.AccessToken, "").json(t, &list)
		if len(list.Schedules) != 0 {
			t.Fatalf("bob lists %+v", list.Schedules)
		}
		call(t, http.MethodGet, base, root.pair.AccessToken, "").json(t, &list)
		if !slices.ContainsFunc(list.Schedules, func(v scheduleView) bool { return v.ID == sc.ID }) {
			t.Fatalf("admin list %+v lacks ada's schedule", list.Schedules)
		}
		if r := call(t, http.MethodGet, one, root.pair.AccessToken, ""); r.status != http.StatusOK {
			t.Fatalf("admin get: %d", r.status)
		}

		// PUT replaces the settings and recomputes the next tick; disabling clears it.
		r = call(t, http.MethodPut, one, ada.pair.AccessToken, `{"workflow":"greet","parameters":{"name":"z"},"spec":"@every 90s","timezone":"Asia/Tokyo","enabled":false}`)
		if r.status != http.StatusOK {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		var upd scheduleView
		r.json(t, &upd)
		if upd.Spec != "@every 90s" || upd.Enabled || upd.NextFireAt != nil || upd.Timezone != "Asia/Tokyo" || upd.CatchUp != "skip" || string(upd.Parameters) != `{"name":"z"}` {
			t.Fatalf("updated %+v (%s)", upd, upd.Parameters)
		}
		stored, err := persistence.NewWorkflowScheduleStore(db).GetSchedule(t.Context(), sc.ID)
		if err != nil || !stored.DueAt.IsZero() {
			t.Fatalf("a disabled schedule is still due at %s (%v)", stored.DueAt, err)
		}

		if r := call(t, http.MethodDelete, one, ada.pair.AccessToken, ""); r.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		call(t, http.MethodGet, one, ada.pair.AccessToken, "").problem(t, http.StatusNotFound)
		call(t, http.MethodGet, base+"/not-a-uuid", ada.pair.AccessToken, "").problem(t, http.StatusBadRequest)
	})
}

func TestScheduleValidation(t *testing.T) {
	env := startSchedules(t, persisttest.SQLite(t))
	ada := env.newUser(t, "ada-sched-v@example.com")
	base := env.url + "/api/v1/workflows/schedules"
	cases := []struct {
		body, field string
	}{
		{`{"workflow":"greet","parameters":{"name":"x"},"spec":"61 * * * *"}`, "spec"},
		{`{"workflow":"greet","parameters":{"name":"x"},"spec":"@every 10ms"}`, "spec"},
		{`{"workflow":"greet","parameters":{"name":"x"},"spec":"0 0 30 2 *"}`, "spec"},
		{`{"workflow":"greet","parameters":{"name":"x"},"spec":"@hourly","timezone":"Mars/Olympus"}`, "timezone"},
		{`{"workflow":"greet","parameters":{"name":"x"},"spec":"@hourly","timezone":"Local"}`, "timezone"},
		{`{"workflow":"greet","parameters":{"name":"x"},"spec":"@hourly","catch_up":"all"}`, "catch_up"},
		{`{"workflow":"nope","spec":"@hourly"}`, "workflow"},
		{`{"workflow":"greet","parameters":{"name":3},"spec":"@hourly"}`, "parameters.name"},
		{`{"workflow":"greet","parameters":{"name":"x"}}`, "spec"},
	}
	for _, c := range cases {
		p := call(t, http.MethodPost, base, ada.pair.AccessToken, c.body).problem(t, http.StatusBadRequest)
		if !slices.ContainsFunc(p.Errors, func(f FieldError) bool { return f.Field == c.field }) {
			t.Errorf("%s: errors %+v, want one for %s", c.body, p.Errors, c.field)
		}
	}
	var list schedulesView
	call(t, http.MethodGet, base, ada.pair.AccessToken, "").json(t, &list)
	if len(list.Schedules) != 0 {
		t.Fatalf("refused bodies stored %d schedules", len(list.Schedules))
	}
}

func TestScheduleCapPerUser(t *testing.T) {
	db := persisttest.SQLite(t)
	env := startSchedules(t, db)
	ada := env.newUser(t, "ada-cap@example.com")
	store := persistence.NewWorkflowScheduleStore(db)
	for range MaxSchedulesPerUser {
		if _, err := store.CreateSchedule(t.Context(), persistence.WorkflowSchedule{OwnerID: ada.id, Workflow: "greet", Spec: "@hourly"}); err != nil {
			t.Fatal(err)
		}
	}
	call(t, http.MethodPost, env.url+"/api/v1/workflows/schedules", ada.pair.AccessToken,
		`{"workflow":"greet","parameters":{"name":"x"},"spec":"@hourly"}`).problem(t, http.StatusConflict)
	if n, err := store.CountSchedules(t.Context(), ada.id); err != nil || n != MaxSchedulesPerUser {
		t.Fatalf("schedules = %d, %v", n, err)
	}
}
