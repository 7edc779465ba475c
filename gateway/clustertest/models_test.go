package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/kowai/kowai/workflows"
)

// fakeOpenAI is an OpenAI-compatible server that answers every chat
// completion with text (in the chat adapter's field format) and counts the calls and the model names asked for.
type fakeOpenAI struct {
	*httptest.Server
	calls atomic.Int64
	model atomic.Value
	key   atomic.Value
	// delay, when set, is how long each completion takes (nanoseconds).
	delay atomic.Int64
}

func newFakeOpenAI(t *testing.T, text string, prompt, completion int) *fakeOpenAI {
	t.Helper()
	f := &fakeOpenAI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			http.NotFound(w, r)
			return
		}
		var req struct {
			Model string `json:"model"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.calls.Add(1)
		time.Sleep(time.Duration(f.delay.Load()))
		f.model.Store(req.Model)
		f.key.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			req.Model, "[[ ## response ## ]]\n"+text+"\n\n[[ ## completed ## ]]", prompt, completion, prompt+completion)
	}))
	t.Cleanup(f.Close)
	return f
}

// testCatalog is a catalog over the offline default and eps, built as
// kowai serve builds it; keys maps api_key_env names to keys.
func testCatalog(t *testing.T, eps []lm.Endpoint, keys map[string]string) *lm.Catalog {
	t.Helper()
	def := lm.NewProvider("offline", "kowai-offline", offline.New())
	base := lm.Config{CacheDisabled: true, Retry: lm.RetryPolicy{MaxAttempts: 1}}
	return lm.NewCatalog(def, lm.ModelInfo{}, eps, func(e lm.Endpoint) (lm.LM, error) {
		s, err := lm.New(base.ForEndpoint(e, keys[e.APIKeyEnv]))
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, nil
	})
}

// An agent's model is the endpoint that answers its turns: two fake
// OpenAI-compatible servers, one premium; unknown and forbidden models are
// refused with a 422 naming the field; GET /api/v1/models lists what the
// caller may use.
func TestAgentModels(t *testing.T) {
	cheap := newFakeOpenAI(t, "cheap answer", 10, 5)
	fancy := newFakeOpenAI(t, "fancy answer", 20, 8)
	eps, err := lm.ParseEndpoints(fmt.Sprintf(`[
		{"name":"openai:cheap-1","base_url":%q,"api_key_env":"CHEAP_KEY","input_per_1k":0.001,"output_per_1k":0.002},
		{"name":"openai:fancy-1","base_url":%q,"api_key_env":"FANCY_KEY","input_per_1k":0.01,"output_per_1k":0.03,"premium":true}]`,
		cheap.URL+"/v1", fancy.URL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	db := persisttest.SQLite(t)
	s := startStack(t, db, stackOptions{models: testCatalog(t, eps, map[string]string{"CHEAP_KEY": "k-cheap", "FANCY_KEY": "k-fancy"})})
	uid, token := signUp(t, s, "ada@example.com")

	var models struct {
		Models []lm.ModelInfo `json:"models"`
	}
	s.call(t, http.MethodGet, "/api/v1/models", token, "").decode(t, http.StatusOK, &models)
	var names []string
	for _, m := range models.Models {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, ","); got != "offline:kowai-offline,offline,openai:cheap-1" {
		t.Fatalf("a plain user's models = %s", got)
	}

	agent := func(model string) string {
		return `{"name":"A","type":"chat","model":"` + model + `"}`
	}
	for _, tc := range []struct{ model, want string }{
		{"openai:nope", "not a configured model"},
		{"gpt-4", "not a configured model"},
		{"openai:fancy-1", "premium"},
	} {
		r := s.call(t, http.MethodPost, "/api/v1/agents", token, agent(tc.model))
		var p struct {
			Errors []gateway.FieldError `json:"errors"`
		}
		r.decode(t, http.StatusUnprocessableEntity, &p)
		if len(p.Errors) != 1 || p.Errors[0].Field != "model" || !strings.Contains(p.Errors[0].Message, tc.want) {
			t.Fatalf("model %s: %s", tc.model, r.body)
		}
	}

	var cheapAgent struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
	}
	s.call(t, http.MethodPost, "/api/v1/agents", token, agent("openai:cheap-1")).decode(t, http.StatusCreated, &cheapAgent)
	var reply gateway.ChatReply
	s.call(t, http.MethodPost, "/api/v1/chat/message", token, `{"content":"hi","agent_id":"`+cheapAgent.ID+`"}`).decode(t, http.StatusOK, &reply)
	if reply.Response != "cheap answer" || cheap.calls.Load() != 1 || fancy.calls.Load() != 0 {
		t.Fatalf("reply %+v; calls cheap %d fancy %d", reply, cheap.calls.Load(), fancy.calls.Load())
	}
	if m, k := cheap.model.Load(), cheap.key.Load(); m != "cheap-1" || k != "Bearer k-cheap" {
		t.Fatalf("cheap server got model %v with %v", m, k)
	}
	if want := (10*0.001 + 5*0.002) / 1000; reply.Usage.CostUSD < want*0.999 || reply.Usage.CostUSD > want*1.001 {
		t.Fatalf("cost %v, want %v", reply.Usage.CostUSD, want)
	}
	// Switching the agent to an unknown model is refused like creating it.
	r := s.call(t, http.MethodPatch, "/api/v1/agents/"+cheapAgent.ID, token, fmt.Sprintf(`{"model":"openai:nope","version":%d}`, cheapAgent.Version))
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"field":"model"`) {
		t.Fatalf("patch to an unknown model: %d %s", r.status, r.body)
	}

	// With the premium role, the premium model is listed and may be chosen.
	if err := persistence.NewUserStore(db).UpdateRoles(t.Context(), uid, []string{string(auth.RolePremium)}); err != nil {
		t.Fatal(err)
	}
	var pair auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"correct horse battery"}`).decode(t, http.StatusOK, &pair)
	s.call(t, http.MethodGet, "/api/v1/models", pair.AccessToken, "").decode(t, http.StatusOK, &models)
	if n := len(models.Models); n != 4 || models.Models[3].Name != "openai:fancy-1" || !models.Models[3].Premium {
		t.Fatalf("a premium user's models = %+v", models.Models)
	}
	var fancyAgent struct {
		ID string `json:"id"`
	}
	s.call(t, http.MethodPost, "/api/v1/agents", pair.AccessToken, agent("openai:fancy-1")).decode(t, http.StatusCreated, &fancyAgent)
	s.call(t, http.MethodPost, "/api/v1/chat/message", pair.AccessToken, `{"content":"hi","agent_id":"`+fancyAgent.ID+`"}`).decode(t, http.StatusOK, &reply)
	if reply.Response != "fancy answer" || cheap.calls.Load() != 1 || fancy.calls.Load() != 1 {
		t.Fatalf("reply %+v; calls cheap %d fancy %d", reply, cheap.calls.Load(), fancy.calls.Load())
	}
	if k := fancy.key.Load(); k != "Bearer k-fancy" {
		t.Fatalf("fancy server got key %v", k)
	}
	// Losing the premium role stops the premium agent at its next turn: the
	// token's permissions are checked on every turn, not only when the agent
	// was saved.
	if err := persistence.NewUserStore(db).UpdateRoles(t.Context(), uid, []string{string(auth.RoleUser)}); err != nil {
		t.Fatal(err)
	}
	var plain auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"correct horse battery"}`).decode(t, http.StatusOK, &plain)
	r = s.call(t, http.MethodPost, "/api/v1/chat/message", plain.AccessToken, `{"content":"hi again","agent_id":"`+fancyAgent.ID+`"}`)
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "models:premium") || fancy.calls.Load() != 1 {
		t.Fatalf("premium agent after losing the role: %d %s; fancy calls %d", r.status, r.body, fancy.calls.Load())
	}
	// "offline" is always available and calls neither server.
	var offlineAgent struct {
		ID string `json:"id"`
	}
	s.call(t, http.MethodPost, "/api/v1/agents", token, agent("offline")).decode(t, http.StatusCreated, &offlineAgent)
	s.call(t, http.MethodPost, "/api/v1/chat/message", token, `{"content":"hi","agent_id":"`+offlineAgent.ID+`"}`).decode(t, http.StatusOK, &reply)
	if cheap.calls.Load()+fancy.calls.Load() != 2 || !strings.Contains(strings.ToLower(reply.Response), "offline") {
		t.Fatalf("offline agent: reply %+v; calls cheap %d fancy %d", reply, cheap.calls.Load(), fancy.calls.Load())
	}
}

// A workflow's agent task runs an agent's premium model only while the run's owner
// holds models:premium, decided at the task from the owner's current roles: a run
// keeps no token, and a schedule fires with no caller. A premium owner's run
// completes; a run whose owner is demoted while it waits for input fails at its
// agent task, at the first attempt, with an error naming models:premium and without
// calling the model; so does a later run; an admin's scheduled run completes.
func TestWorkflowAgentTaskPremiumModels(t *testing.T) {
	fancy := newFakeOpenAI(t, "fancy answer", 20, 8)
	eps, err := lm.ParseEndpoints(fmt.Sprintf(`[{"name":"openai:fancy-1","base_url":%q,"input_per_1k":0.01,"output_per_1k":0.03,"premium":true}]`,
		fancy.URL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	type agentParams struct {
		Agent string `json:"agent"`
	}
	// Up to 3 attempts: a refusal must not be retried.
	retry := workflows.WithRetry(workflows.Retry{Attempts: 3, Initial: 10 * time.Millisecond})
	db := persisttest.SQLite(t)
	s := startStack(t, db, stackOptions{models: testCatalog(t, eps, nil), workflows: func(reg *workflows.Registry) {
		// ask is one agent task; ask-later waits for input first.
		if err := workflows.Register(reg, "ask", func(c *workflows.Context, p agentParams) (string, error) {
			r, err := workflows.Agent(c, "ask", workflows.AgentRequest{Agent: p.Agent, Message: "from a workflow"}, retry)
			return r.Content, err
		}); err != nil {
			t.Fatal(err)
		}
		if err := workflows.Register(reg, "ask-later", func(c *workflows.Context, p agentParams) (string, error) {
			if _, err := workflows.WaitForInput[struct {
				Go bool `json:"go"`
			}](c, "go"); err != nil {
				return "", err
			}
			r, err := workflows.Agent(c, "ask", workflows.AgentRequest{Agent: p.Agent, Message: "from a workflow, later"}, retry)
			return r.Content, err
		}); err != nil {
			t.Fatal(err)
		}
	}})
	users := persistence.NewUserStore(db)
	login := func(email string) string {
		t.Helper()
		var pair auth.TokenPair
		s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"`+email+`","password":"correct horse battery"}`).decode(t, http.StatusOK, &pair)
		return pair.AccessToken
	}
	promote := func(uid string, role auth.Role) {
		t.Helper()
		if err := users.UpdateRoles(t.Context(), uid, []string{string(role)}); err != nil {
			t.Fatal(err)
		}
	}
	newAgent := func(token string) string {
		t.Helper()
		var a struct {
			ID string `json:"id"`
		}
		s.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"fancy","type":"chat","model":"openai:fancy-1"}`).decode(t, http.StatusCreated, &a)
		return a.ID
	}
	// refused checks a run that failed at its agent task for want of models:premium.
	refused := func(token, run string) {
		t.Helper()
		var st runStatus
		testenv.Eventually(t, 20*time.Second, func() error {
			if st = s.status(t, token, run); !workflows.Finished(st.Status) {
				return fmt.Errorf("run %s is %s", run, st.Status)
			}
			return nil
		})
		if st.Status != "failed" {
			t.Fatalf("run %s is %s (%s), want failed", run, st.Status, st.Result)
		}
		var view struct {
			Tasks []struct {
				Kind     string `json:"kind"`
				Status   string `json:"status"`
				Attempts int    `json:"attempts"`
				Error    string `json:"error"`
			} `json:"tasks"`
		}
		s.call(t, http.MethodGet, "/api/v1/workflows/"+run+"/status", token, "").decode(t, http.StatusOK, &view)
		var agentTask []string
		for _, task := range view.Tasks {
			if task.Kind == "agent" {
				agentTask = append(agentTask, fmt.Sprintf("%s after %d attempt(s): %s", task.Status, task.Attempts, task.Error))
			}
		}
		if !strings.Contains(st.Error, "models:premium") || len(agentTask) != 1 ||
			!strings.HasPrefix(agentTask[0], "failed after 1 attempt(s): ") || !strings.Contains(agentTask[0], "models:premium") {
			t.Fatalf("run %s failed with %q; agent task %q", run, st.Error, agentTask)
		}
	}

	uid, _ := signUp(t, s, "ada@example.com")
	promote(uid, auth.RolePremium)
	ada := login("ada@example.com")
	agent := newAgent(ada)
	params := fmt.Sprintf(`{"agent":%q}`, agent)

	// A premium owner's run gets the premium model's answer.
	first := s.trigger(t, ada, "ask", params)
	if st := s.waitRun(t, ada, first, "completed"); string(st.Result) != `"fancy answer"` || fancy.calls.Load() != 1 {
		t.Fatalf("premium owner's run: %s; model calls %d", st.Result, fancy.calls.Load())
	}

	// Triggered while premium, demoted (by an admin, as the API does it) while it
	// waits: its agent task is refused.
	later := s.trigger(t, ada, "ask-later", params)
	s.waitRun(t, ada, later, "paused")
	adminID, _ := signUp(t, s, "root@example.com")
	promote(adminID, auth.RoleAdmin)
	root := login("root@example.com")
	s.call(t, http.MethodPut, "/api/v1/admin/users/"+uid+"/roles", root, `{"roles":["user"]}`).decode(t, http.StatusOK, nil)
	ada = login("ada@example.com")
	s.call(t, http.MethodPost, "/api/v1/workflows/"+later+"/resume", ada, `{"input":{"go":true}}`).decode(t, http.StatusAccepted, nil)
	refused(ada, later)
	// A run triggered after the demotion is refused the same way.
	refused(ada, s.trigger(t, ada, "ask", params))
	if n := fancy.calls.Load(); n != 1 {
		t.Fatalf("refused tasks called the premium model %d times", n-1)
	}

	// An admin's schedule fires with no caller; the admin's roles grant the model.
	var sc struct {
		ID        string `json:"id"`
		LastRunID string `json:"last_run_id"`
	}
	s.call(t, http.MethodPost, "/api/v1/workflows/schedules", root,
		fmt.Sprintf(`{"workflow":"ask","parameters":{"agent":%q},"spec":"@every 1s"}`, newAgent(root))).decode(t, http.StatusCreated, &sc)
	testenv.Eventually(t, 20*time.Second, func() error {
		r := s.call(t, http.MethodGet, "/api/v1/workflows/schedules/"+sc.ID, root, "")
		if err := json.Unmarshal(r.body, &sc); err != nil || sc.LastRunID == "" {
			return fmt.Errorf("schedule not fired yet: %d %s", r.status, r.body)
		}
		return nil
	})
	s.call(t, http.MethodDelete, "/api/v1/workflows/schedules/"+sc.ID, root, "").decode(t, http.StatusNoContent, nil)
	if st := s.waitRun(t, root, sc.LastRunID, "completed"); string(st.Result) != `"fancy answer"` {
		t.Fatalf("admin's scheduled run: %s", st.Result)
	}
}
