package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/netguard"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

// recordingCommands is a WorkflowCommands that records triggers.
type recordingCommands struct {
	mu       sync.Mutex
	webhooks []string
}

var _ WorkflowCommands = (*recordingCommands)(nil)

func (r *recordingCommands) Trigger(_ context.Context, _, _, _ string, _ json.RawMessage, webhookURL string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.webhooks = append(r.webhooks, webhookURL)
	return "pending", nil
}
func (r *recordingCommands) Cancel(context.Context, string) (string, error) { return "cancelled", nil }
func (r *recordingCommands) Resume(context.Context, string, json.RawMessage) (string, error) {
	return "running", nil
}
func (r *recordingCommands) Retry(context.Context, string) (string, error) { return "pending", nil }

func startWebhookREST(t *testing.T, db *persistence.DB, allow ...string) (*restEnv, *recordingCommands) {
	t.Helper()
	reg := workflows.NewRegistry()
	if err := workflows.Register(reg, "greet", func(c *workflows.Context, p struct {
		Name string `json:"name"`
	}) (string, error) {
		return "hi " + p.Name, nil
	}); err != nil {
		t.Fatal(err)
	}
	var nets []*net.IPNet
	for _, a := range allow {
		_, n, err := net.ParseCIDR(a)
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, n)
	}
	cmds := &recordingCommands{}
	env := startREST(t, restConfig{db: db, workflows: &Workflows{Registry: reg, Runs: persistence.NewWorkflowStore(db), Commands: cmds,
		Schedules: persistence.NewWorkflowScheduleStore(db), Webhooks: persistence.NewWebhookStore(db), WebhookGuard: netguard.New(nets)}})
	return env, cmds
}

// TestTriggerRefusesNonPublicWebhooks replays SSRF attempts over HTTP: a webhook_url
// naming loopback, private, link-local or unspecified addresses is a field error and
// starts nothing, unless the operator allowed the network.
func TestTriggerRefusesNonPublicWebhooks(t *testing.T) {
	env, cmds := startWebhookREST(t, persisttest.SQLite(t))
	ada := env.newUser(t, "ada-hook@example.com")
	for _, url := range []string{
		"http://127.0.0.1:9/hook", "http://10.0.0.8/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/",
		"http://0.0.0.0/", "http://localhost/hook", "http://[::ffff:127.0.0.1]/", "file:///etc/passwd", "gopher://example.com/",
	} {
		for _, path := range []string{"/api/v1/workflows/trigger", "/api/v1/workflows/schedules"} {
			body := `{"name":"greet","parameters":{"name":"x"},"webhook_url":"` + url + `"}`
			if path != "/api/v1/workflows/trigger" {
				body = `{"workflow":"greet","parameters":{"name":"x"},"spec":"@hourly","webhook_url":"` + url + `"}`
			}
			p := call(t, http.MethodPost, env.url+path, ada.pair.AccessToken, body).problem(t, http.StatusBadRequest)
			if !slices.ContainsFunc(p.Errors, func(f FieldError) bool { return f.Field == "webhook_url" }) {
				t.Errorf("%s %s: errors %+v, want webhook_url", path, url, p.Errors)
			}
		}
	}
	if len(cmds.webhooks) != 0 {
		t.Fatalf("refused triggers started %d runs", len(cmds.webhooks))
	}

	// The operator's allowance (tests allow 127.0.0.1 explicitly).
	env2, cmds2 := startWebhookREST(t, persisttest.SQLite(t), "127.0.0.1/32")
	bob := env2.newUser(t, "bob-hook@example.com")
	r := call(t, http.MethodPost, env2.url+"/api/v1/workflows/trigger", bob.pair.AccessToken,
		`{"name":"greet","parameters":{"name":"x"},"webhook_url":"http://127.0.0.1:9/hook"}`)
	if r.status != http.StatusAccepted || len(cmds2.webhooks) != 1 || cmds2.webhooks[0] != "http://127.0.0.1:9/hook" {
		t.Fatalf("allowed webhook: %d %s, triggers %v", r.status, r.body, cmds2.webhooks)
	}
	call(t, http.MethodPost, env2.url+"/api/v1/workflows/trigger", bob.pair.AccessToken,
		`{"name":"greet","parameters":{"name":"x"},"webhook_url":"http://10.0.0.8/hook"}`).problem(t, http.StatusBadRequest)
}

func TestRunStatusListsNotificationAttempts(t *testing.T) {
	db := persisttest.SQLite(t)
	env, _ := startWebhookREST(t, db)
	ada := env.newUser(t, "ada-notes@example.com")
	ctx := t.Context()
	run, err := persistence.NewWorkflowStore(db).CreateRun(ctx, persistence.WorkflowRun{Name: "greet", OwnerID: ada.id,
		Status: persistence.StatusCompleted, WebhookURL: "https://hooks.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Goqu.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := persistence.NotifyOp(run.ID, run.WebhookURL, time.Now()).Apply(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	hooks := persistence.NewWebhookStore(db)
	n, err := hooks.Notification(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	next := n
	next.Version, next.Attempts, next.NextAt = n.Version+1, 1, time.Now().Add(time.Minute)
	if err := hooks.RecordDelivery(ctx, next, n.Version, persistence.WebhookDelivery{RunID: run.ID, Attempt: 1, StatusCode: 503,
		Error: "answered 503 Service Unavailable", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var st runStatus
	r := call(t, http.MethodGet, env.url+"/api/v1/workflows/"+run.ID+"/status", ada.pair.AccessToken, "")
	if r.status != http.StatusOK {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	r.json(t, &st)
	if len(st.Notifications) != 1 || st.Notifications[0].StatusCode != 503 || st.Notifications[0].Delivered || st.Notifications[0].Attempt != 1 {
		t.Fatalf("notifications %+v", st.Notifications)
	}
}
