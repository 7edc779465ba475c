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
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
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
