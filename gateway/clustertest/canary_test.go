package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// compiledChat is the compiled state of the chat type's program with
// instructions, as kowai optimize --program chat would write it.
func compiledChat(t *testing.T, instructions string) json.RawMessage {
	t.Helper()
	reg, err := agents.NewRegistry(agents.Builtins(time.Now)...)
	if err != nil {
		t.Fatal(err)
	}
	progs, err := reg.Programs(nil)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := progs.Get("chat")
	if err != nil {
		t.Fatal(err)
	}
	m := entry.New()
	st, err := signatures.SaveState(m, "chat")
	if err != nil {
		t.Fatal(err)
	}
	for name, ps := range st.Predictors {
		ps.Signature.Instructions = instructions
		ps.Demos = []signatures.Example{{Inputs: signatures.Values{"message": "Hi"}, Outputs: signatures.Values{"response": "Ahoy"}}}
		st.Predictors[name] = ps
	}
	st.Version = ""
	if err := signatures.LoadState(m, st); err != nil {
		t.Fatal(err)
	}
	if st, err = signatures.SaveState(m, "chat"); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canaryModel answers "noted", and fails every request whose system prompt
// holds "BROKEN".
func canaryModel() *lmtest.Scripted {
	return lmtest.NewScripted(nil, lmtest.WithRespond(func(req *lm.Request) lmtest.Output {
		for _, m := range req.Messages {
			if m.Role == llms.ChatMessageTypeSystem && strings.Contains(lm.MessagesText([]llms.MessageContent{m}), "BROKEN") {
				return lmtest.Output{Err: fmt.Errorf("scripted failure: %w", lm.ErrProvider)}
			}
		}
		return lmtest.Output{Text: "[[ ## response ## ]]\nnoted\n\n[[ ## completed ## ]]"}
	}))
}

// canaryAgent is an agent as the canary tests read it.
type canaryAgent struct {
	ID       string          `json:"id"`
	Version  int64           `json:"version"`
	Program  json.RawMessage `json:"program"`
	Variants []struct {
		Name   string `json:"name"`
		Canary *struct {
			Percent int    `json:"percent"`
			Version string `json:"version"`
		} `json:"canary"`
	} `json:"variants"`
}

// canary is the agent's canary variant's name, or "".
func (a canaryAgent) canary() string {
	for _, v := range a.Variants {
		if v.Canary != nil {
			return v.Name
		}
	}
	return ""
}

// programAudit returns the actions of the agent's program audit entries, oldest
// first, with the trigger of each decision.
func programAudit(t *testing.T, db *persistence.DB, agentID string) []string {
	t.Helper()
	page, err := persistence.NewAuditStore(db).List(t.Context(), persistence.PageRequest{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(page.Items) - 1; i >= 0; i-- {
		e := page.Items[i]
		if e.TargetID != agentID || !strings.HasPrefix(e.Action, "agent.program.") {
			continue
		}
		var d struct {
			Trigger string `json:"trigger"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSuffix(e.Action+" "+d.Trigger, " "))
	}
	return out
}

// A canary that the model fails on is rolled back by the agent grain after its
// minimum turns, one that does well is promoted once rated, and one rated down is
// rolled back: real turns and ratings through the gateways of two nodes, on SQLite
// and MariaDB. Each decision is audited once and counted once over both nodes.
func TestCanaryRollbackAndPromotion(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(testing.TB) *persistence.DB
	}{{"sqlite", persisttest.SQLite}, {"mariadb", persisttest.MySQL}} {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db(t)
			model := canaryModel()
			// Two nodes: the agent's grain decides on whichever node holds it, for
			// turns sent through either.
			nodes := startStacks(t, db, 2, stackOptions{model: model})
			s := nodes[0]
			_, token := signUp(t, s, "ada@example.com")
			var ag canaryAgent
			s.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"Canaried","type":"chat","instructions":"Answer plainly."}`).
				decode(t, http.StatusCreated, &ag)

			// A broken program: every canary turn fails.
			broken := compiledChat(t, "Answer. BROKEN")
			body := fmt.Sprintf(`{"state":%s,"percent":50,"min_turns":3,"min_ratings":0,"max_error_rate_increase":0.1}`, broken)
			s.call(t, http.MethodPost, "/api/v1/agents/"+ag.ID+"/programs", token, body).decode(t, http.StatusCreated, &ag)
			name := ag.canary()
			if name == "" || ag.Variants[0].Canary.Percent != 50 {
				t.Fatalf("deployed agent has no canary at 50%%: %+v", ag)
			}
			canaryTurns, failed := 0, 0
			for i := 0; i < 60 && ag.canary() != ""; i++ {
				r := nodes[i%2].call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"Hello %d","agent_id":%q}`, i, ag.ID))
				switch r.status {
				case http.StatusOK:
					var reply gateway.ChatReply
					r.decode(t, http.StatusOK, &reply)
					// Once its third canary turn has failed, the grain rolls the canary
					// back; the agent read above may still show it (the read can come
					// before the rollback is stored), and then a canary conversation
					// rightly succeeds on the agent's own program.
					if agents.AssignCanary(ag.ID, reply.ConversationID, 50) && failed < 3 {
						t.Fatalf("conversation %s runs the broken canary yet succeeded after %d failed canary turns", reply.ConversationID, failed)
					}
				case http.StatusBadGateway:
					failed++
					canaryTurns++
				default:
					t.Fatalf("turn %d: %d %s", i, r.status, r.body)
				}
				s.call(t, http.MethodGet, "/api/v1/agents/"+ag.ID, token, "").decode(t, http.StatusOK, &ag)
			}
			if ag.canary() != "" || failed != 3 {
				t.Fatalf("after %d failed canary turns the agent still has canary %q (want rolled back after 3)", failed, ag.canary())
			}
			if string(ag.Program) != "null" {
				t.Fatalf("a rolled-back canary left the program %s", ag.Program)
			}
			// Every turn now runs the agent's own program: none fails.
			for i := range 4 {
				s.call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"After %d","agent_id":%q}`, i, ag.ID)).
					decode(t, http.StatusOK, nil)
			}

			// A good program, promoted once its canary turns are rated.
			good := compiledChat(t, "Answer as a careful GOOD-PROGRAM.")
			body = fmt.Sprintf(`{"state":%s,"percent":50,"min_turns":3,"min_ratings":2,"version":%d}`, good, ag.Version)
			s.call(t, http.MethodPost, "/api/v1/agents/"+ag.ID+"/programs", token, body).decode(t, http.StatusCreated, &ag)
			goodVersion := ag.Variants[len(ag.Variants)-1].Canary.Version
			for i := 0; i < 60 && ag.canary() != ""; i++ {
				var reply gateway.ChatReply
				nodes[i%2].call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"Hi %d","agent_id":%q}`, i, ag.ID)).
					decode(t, http.StatusOK, &reply)
				onCanary := agents.AssignCanary(ag.ID, reply.ConversationID, 50)
				if p := lastSystemPrompt(t, model); onCanary != strings.Contains(p, "GOOD-PROGRAM") {
					t.Fatalf("conversation %s (canary %v) ran with the system prompt %q", reply.ConversationID, onCanary, p)
				}
				s.call(t, http.MethodPost, "/api/v1/chat/feedback", token, fmt.Sprintf(`{"message_id":%q,"rating":1}`, reply.MessageID)).
					decode(t, http.StatusCreated, nil)
				s.call(t, http.MethodGet, "/api/v1/agents/"+ag.ID, token, "").decode(t, http.StatusOK, &ag)
			}
			if ag.canary() != "" {
				t.Fatalf("the good canary was not promoted: %+v", ag)
			}
			var program signatures.State
			if err := json.Unmarshal(ag.Program, &program); err != nil || program.Version != goodVersion {
				t.Fatalf("promoted program %s (%v), want version %s", ag.Program, err, goodVersion)
			}
			// Every conversation now runs the promoted program.
			s.call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"Now","agent_id":%q}`, ag.ID)).decode(t, http.StatusOK, nil)
			if p := lastSystemPrompt(t, model); !strings.Contains(p, "GOOD-PROGRAM") {
				t.Fatalf("after promotion a turn ran with %q", p)
			}
			// A canary whose replies are rated down while the current version's are
			// rated up is rolled back on its ratings.
			disliked := compiledChat(t, "Answer as a DISLIKED-PROGRAM.")
			body = fmt.Sprintf(`{"state":%s,"percent":50,"min_turns":3,"min_ratings":2,"max_feedback_drop":0.5}`, disliked)
			s.call(t, http.MethodPost, "/api/v1/agents/"+ag.ID+"/programs", token, body).decode(t, http.StatusCreated, &ag)
			for i := 0; i < 60 && ag.canary() != ""; i++ {
				var reply gateway.ChatReply
				nodes[i%2].call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"Rate %d","agent_id":%q}`, i, ag.ID)).
					decode(t, http.StatusOK, &reply)
				rating := 1
				if agents.AssignCanary(ag.ID, reply.ConversationID, 50) {
					rating = -1
				}
				s.call(t, http.MethodPost, "/api/v1/chat/feedback", token, fmt.Sprintf(`{"message_id":%q,"rating":%d}`, reply.MessageID, rating)).
					decode(t, http.StatusCreated, nil)
				s.call(t, http.MethodGet, "/api/v1/agents/"+ag.ID, token, "").decode(t, http.StatusOK, &ag)
			}
			if ag.canary() != "" || instructionsOf(t, ag.Program) != "Answer as a careful GOOD-PROGRAM." {
				t.Fatalf("the disliked canary was not rolled back, or changed the program: %+v %s", ag, ag.Program)
			}
			want := []string{"agent.program.deploy", "agent.program.rollback automatic", "agent.program.deploy", "agent.program.promote automatic",
				"agent.program.deploy", "agent.program.rollback automatic"}
			if got := programAudit(t, db, ag.ID); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("audit %v, want %v", got, want)
			}
			for outcome, want := range map[string]float64{"deployed": 3, "rolled_back": 2, "promoted": 1} {
				trigger := "automatic"
				if outcome == "deployed" {
					trigger = "manual"
				}
				labels := map[string]string{"outcome": outcome, "trigger": trigger}
				if got := counterValue(t, nodes[0], "kowai_agent_program_deploys_total", labels) + counterValue(t, nodes[1], "kowai_agent_program_deploys_total", labels); got != want {
					t.Errorf("kowai_agent_program_deploys_total{outcome=%s} = %v, want %v", outcome, got, want)
				}
			}
		})
	}
}

// The programs routes validate their input field by field, answer 404 to a
// user who does not own the agent, and promote or roll back on request.
func TestCanaryRoutes(t *testing.T) {
	db := persisttest.SQLite(t)
	model := canaryModel()
	s := startStack(t, db, stackOptions{model: model})
	_, token := signUp(t, s, "ada@example.com")
	_, other := signUp(t, s, "bob@example.com")
	var ag canaryAgent
	s.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"Mine","type":"chat"}`).decode(t, http.StatusCreated, &ag)
	programs := "/api/v1/agents/" + ag.ID + "/programs"
	good := compiledChat(t, "Be good.")
	var tampered signatures.State
	if err := json.Unmarshal(good, &tampered); err != nil {
		t.Fatal(err)
	}
	tampered.Version = "sha256:0000000000000000"
	bad, err := json.Marshal(tampered)
	if err != nil {
		t.Fatal(err)
	}
	analysis := strings.Replace(string(good), `"program":"chat"`, `"program":"analysis"`, 1)
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"no state", `{}`, http.StatusBadRequest, "state"},
		{"state not an object", `{"state":[1]}`, http.StatusBadRequest, "state"},
		{"unknown state key", `{"state":{"format":1,"version":"sha256:00","predictors":{},"extra":1}}`, http.StatusBadRequest, "state"},
		{"hash mismatch", `{"state":` + string(bad) + `}`, http.StatusBadRequest, "state"},
		{"other program", `{"state":` + analysis + `}`, http.StatusBadRequest, "state"},
		{"percent 0", `{"state":` + string(good) + `,"percent":0}`, http.StatusBadRequest, "percent"},
		{"percent 101", `{"state":` + string(good) + `,"percent":101}`, http.StatusBadRequest, "percent"},
		{"min_turns 0", `{"state":` + string(good) + `,"min_turns":0}`, http.StatusBadRequest, "min_turns"},
		{"negative margin", `{"state":` + string(good) + `,"max_error_rate_increase":-0.1}`, http.StatusBadRequest, "max_error_rate_increase"},
		{"feedback margin", `{"state":` + string(good) + `,"max_feedback_drop":3}`, http.StatusBadRequest, "max_feedback_drop"},
	} {
		r := s.call(t, http.MethodPost, programs, token, tc.body)
		if r.status != tc.status || !strings.Contains(string(r.body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want %d on field %s", tc.name, r.status, r.body, tc.status, tc.field)
		}
	}
	// A plain variant may carry compiled state: its conversations run with it.
	r := s.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"V","type":"chat","variants":[{"name":"tuned","weight":1,"program":`+string(bad)+`}]}`)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"variants[0].program"`) {
		t.Errorf("variant with a tampered program: %d %s", r.status, r.body)
	}
	var va canaryAgent
	s.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"V","type":"chat","instructions":"Plain.","variants":[{"name":"tuned","weight":1,"program":`+
		string(compiledChat(t, "TUNED-VARIANT"))+`},{"name":"plain","weight":1}]}`).decode(t, http.StatusCreated, &va)
	for i := range 6 {
		var reply gateway.ChatReply
		s.call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"v%d","agent_id":%q}`, i, va.ID)).decode(t, http.StatusOK, &reply)
		tuned := agents.AssignVariant(va.ID, reply.ConversationID, []int{1, 1}) == 0
		if p := lastSystemPrompt(t, model); tuned != strings.Contains(p, "TUNED-VARIANT") {
			t.Fatalf("conversation %s (tuned %v) ran with %q", reply.ConversationID, tuned, p)
		}
	}
	for _, path := range []string{programs, programs + "/promote", programs + "/rollback"} {
		body := ""
		if path == programs {
			body = `{"state":` + string(good) + `}`
		}
		if r := s.call(t, http.MethodPost, path, other, body); r.status != http.StatusNotFound {
			t.Errorf("another user's POST %s: %d %s, want 404", path, r.status, r.body)
		}
	}
	if r := s.call(t, http.MethodPost, programs+"/promote", token, ""); r.status != http.StatusNotFound {
		t.Errorf("promote without a canary: %d %s, want 404", r.status, r.body)
	}
	if r := s.call(t, http.MethodPost, programs, token, fmt.Sprintf(`{"state":%s,"version":%d}`, good, ag.Version+5)); r.status != http.StatusConflict {
		t.Errorf("deploy at a stale version: %d %s, want 409", r.status, r.body)
	}
	s.call(t, http.MethodPost, programs, token, `{"state":`+string(good)+`}`).decode(t, http.StatusCreated, &ag)
	if name := ag.canary(); !strings.HasPrefix(name, "canary-") || ag.Variants[0].Canary.Percent != gateway.DefaultCanaryPercent {
		t.Fatalf("deployed with defaults: %+v", ag)
	}
	// PUT keeps the canary; a variant may not take a canary's name.
	r = s.call(t, http.MethodPut, "/api/v1/agents/"+ag.ID, token, fmt.Sprintf(`{"name":"Mine2","type":"chat","instructions":"","signature":"","model":"","config":{},"version":%d}`, ag.Version))
	r.decode(t, http.StatusOK, &ag)
	if ag.canary() == "" {
		t.Fatalf("PUT dropped the canary: %s", r.body)
	}
	r = s.call(t, http.MethodPatch, "/api/v1/agents/"+ag.ID, token, fmt.Sprintf(`{"variants":[{"name":"canary-x","weight":1}],"version":%d}`, ag.Version))
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"variants[0].name"`) {
		t.Errorf("variant named canary-x: %d %s", r.status, r.body)
	}
	// A type the canary's program does not fit is refused.
	r = s.call(t, http.MethodPatch, "/api/v1/agents/"+ag.ID, token, fmt.Sprintf(`{"type":"analysis","version":%d}`, ag.Version))
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "canary") {
		t.Errorf("type change under a canary: %d %s", r.status, r.body)
	}
	s.call(t, http.MethodPost, programs+"/promote", token, "").decode(t, http.StatusOK, &ag)
	if ag.canary() != "" || instructionsOf(t, ag.Program) != "Be good." {
		t.Fatalf("promoted on request: %+v %s", ag, ag.Program)
	}
	s.call(t, http.MethodPost, programs, token, `{"state":`+string(compiledChat(t, "Be other."))+`}`).decode(t, http.StatusCreated, &ag)
	s.call(t, http.MethodPost, programs+"/rollback", token, "").decode(t, http.StatusOK, &ag)
	if ag.canary() != "" || instructionsOf(t, ag.Program) != "Be good." {
		t.Fatalf("rolled back on request: %+v %s", ag, ag.Program)
	}
	want := []string{"agent.program.deploy", "agent.program.promote manual", "agent.program.deploy", "agent.program.rollback manual"}
	if got := programAudit(t, db, ag.ID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
}

// instructionsOf are the instructions of the single predictor of a state.
func instructionsOf(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var st signatures.State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("program %s: %v", raw, err)
	}
	if len(st.Predictors) != 1 {
		t.Fatalf("program %s has %d predictors, want 1", raw, len(st.Predictors))
	}
	for _, p := range st.Predictors {
		return p.Signature.Instructions
	}
	return ""
}

// counterValue is the value of the stack's counter name with labels.
func counterValue(t *testing.T, s *stack, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
