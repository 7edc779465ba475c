package clustertest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
)

// One user's turns spread over two nodes that share the database and Redis:
// the budget holds across both (each turn costs 15 tokens, the limit is 100:
// the 7th turn crosses it and is kept, the 8th is refused with 402 before
// any model call, on either node), on REST, WebSocket, the OpenAI-compatible
// API and workflow agent steps alike; the refused turn keeps the user's message;
// GET /users/me/usage reports the ledger; an admin's override lifts the
// limit and its removal restores it. On SQLite and MariaDB.
func TestBudgetsAcrossNodes(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		rdb := testenv.Redis(t)
		prefix := "kowai-test:budget:" + rand.Text() + ":"
		srv := newFakeOpenAI(t, "paid answer", 10, 5)
		eps, err := lm.ParseEndpoints(fmt.Sprintf(`[{"name":"openai:paid-1","base_url":%q,"input_per_1k":0.001,"output_per_1k":0.002}]`, srv.URL+"/v1"))
		if err != nil {
			t.Fatal(err)
		}
		roles := map[string]budgets.Limits{"user": {DayTokens: 100}}
		enforcer := func(w *persistence.Writer) *budgets.Enforcer {
			ledger := persistence.NewUsageStore(db)
			enf, err := budgets.New(budgets.Config{Roles: roles, Users: persistence.NewUserStore(db), Ledger: ledger,
				Counter: budgets.NewRedis(rdb, ledger, prefix), Writer: w})
			if err != nil {
				t.Fatal(err)
			}
			return enf
		}
		node := func() *stack {
			return startStack(t, db, stackOptions{models: testCatalog(t, eps, nil), budgets: enforcer, workflows: func(reg *workflows.Registry) {
				// ask is a workflow whose one step is a turn on the agent it is given.
				if err := workflows.Register(reg, "ask", func(c *workflows.Context, p struct {
					Agent string `json:"agent"`
				}) (string, error) {
					r, err := workflows.Agent(c, "ask", workflows.AgentRequest{Agent: p.Agent, Message: "from a workflow"})
					return r.Content, err
				}); err != nil {
					t.Fatal(err)
				}
			}})
		}
		a, b := node(), node()
		nodes := []*stack{a, b}
		uid, token := signUp(t, a, "ada@example.com")
		var agent struct {
			ID string `json:"id"`
		}
		a.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"paid","type":"chat","model":"openai:paid-1"}`).decode(t, http.StatusCreated, &agent)
		turn := fmt.Sprintf(`{"content":"hello","agent_id":%q}`, agent.ID)

		ok := 0
		var refused reply
		for i := range 20 {
			r := nodes[i%2].call(t, http.MethodPost, "/api/v1/chat/message", token, turn)
			if r.status != http.StatusOK {
				refused = r
				break
			}
			ok++
		}
		if ok != 7 || refused.status != http.StatusPaymentRequired || !strings.Contains(string(refused.body), "daily token budget is used up (105 of 100 tokens)") {
			t.Fatalf("%d turns answered, then %d %s", ok, refused.status, refused.body)
		}
		calls := srv.calls.Load()
		if calls != 7 {
			t.Fatalf("the model was called %d times for 7 answered turns", calls)
		}
		// Both nodes refuse now, on every channel, and never call the model.
		for i, s := range nodes {
			if r := s.call(t, http.MethodPost, "/api/v1/chat/message", token, turn); r.status != http.StatusPaymentRequired {
				t.Fatalf("node %d REST: %d %s", i, r.status, r.body)
			}
			c := s.wsOpen(t, token)
			wsWrite(t, c, fmt.Sprintf(`{"type":"message","content":"over ws","agent_id":%q,"id":"w1"}`, agent.ID))
			for {
				var f wsFrame
				if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
					t.Fatal(err)
				}
				if err := c.ReadJSON(&f); err != nil {
					t.Fatalf("node %d WebSocket: %v", i, err)
				}
				if f.Type == "done" {
					t.Fatalf("node %d WebSocket turn answered over the budget: %+v", i, f)
				}
				if f.Type == "error" {
					if f.Status != http.StatusPaymentRequired || !strings.Contains(f.Detail, "budget") {
						t.Fatalf("node %d WebSocket error frame %+v", i, f)
					}
					break
				}
			}
			r := s.call(t, http.MethodPost, "/v1/chat/completions", token, fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, agent.ID))
			if r.status != http.StatusPaymentRequired || !strings.Contains(string(r.body), "insufficient_quota") {
				t.Fatalf("node %d OpenAI-compatible: %d %s", i, r.status, r.body)
			}
		}
		// A workflow's agent step is refused too, and fails its run.
		run := b.trigger(t, token, "ask", fmt.Sprintf(`{"agent":%q}`, agent.ID))
		if st := b.waitRun(t, token, run, "failed"); !strings.Contains(st.Error, "budget") {
			t.Fatalf("workflow run failed with %q", st.Error)
		}
		if n := srv.calls.Load(); n != calls {
			t.Fatalf("refused turns called the model %d times", n-calls)
		}

		// The refused turn kept the user's message and recorded the refusal.
		var convs struct {
			Conversations []struct {
				ID string `json:"id"`
			} `json:"conversations"`
		}
		a.call(t, http.MethodGet, "/api/v1/chat/conversations?limit=200", token, "").decode(t, http.StatusOK, &convs)
		refusedTurns := 0
		for _, cv := range convs.Conversations {
			var h struct {
				Messages []struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"messages"`
			}
			a.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+cv.ID, token, "").decode(t, http.StatusOK, &h)
			if len(h.Messages) == 2 && h.Messages[0].Role == "user" && h.Messages[1].Role == "system" && strings.Contains(h.Messages[1].Content, "budget") {
				refusedTurns++
			}
		}
		// The first refusal, two REST turns, two WebSocket turns and two OpenAI-compatible ones.
		if refusedTurns < 5 {
			t.Fatalf("%d refused turns kept the user's message with the refusal", refusedTurns)
		}

		// Ledger rows are written in the background, in the writer's next commit.
		var usage budgets.Report
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			b.call(t, http.MethodGet, "/api/v1/users/me/usage", token, "").decode(t, http.StatusOK, &usage)
			if usage.Today.Tokens >= 105 || time.Now().After(deadline) {
				break
			}
		}
		if usage.Today.Tokens != 105 || usage.ThisMonth.Tokens != 105 || len(usage.Today.ByAgentModel) != 1 ||
			usage.Today.ByAgentModel[0].Calls != 7 || usage.Today.ByAgentModel[0].Model != "openai:paid-1" ||
			usage.Today.ByAgentModel[0].AgentID != agent.ID || usage.Limits.DayTokens != 100 || usage.Override {
			t.Fatalf("usage = %+v", usage)
		}
		if want := 7 * (10*0.001 + 5*0.002) / 1000; usage.Today.CostUSD < want*0.999 || usage.Today.CostUSD > want*1.001 {
			t.Fatalf("cost today %v, want %v", usage.Today.CostUSD, want)
		}

		// An admin raises Ada's limit; her next turn is answered.
		adminID, _ := signUp(t, a, "root@example.com")
		if err := persistence.NewUserStore(db).UpdateRoles(t.Context(), adminID, []string{string(auth.RoleAdmin)}); err != nil {
			t.Fatal(err)
		}
		var pair auth.TokenPair
		a.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"root@example.com","password":"correct horse battery"}`).decode(t, http.StatusOK, &pair)
		if r := a.call(t, http.MethodPut, "/api/v1/admin/users/"+uid+"/budget", token, `{"day_tokens":1000}`); r.status != http.StatusForbidden {
			t.Fatalf("a user set her own budget: %d %s", r.status, r.body)
		}
		var view struct {
			Limits   budgets.Limits `json:"limits"`
			Override bool           `json:"override"`
		}
		a.call(t, http.MethodPut, "/api/v1/admin/users/"+uid+"/budget", pair.AccessToken, `{"day_tokens":1000,"day_usd":0,"month_tokens":0,"month_usd":0}`).
			decode(t, http.StatusOK, &view)
		if !view.Override || view.Limits.DayTokens != 1000 {
			t.Fatalf("override = %+v", view)
		}
		// The node that took the change applies it at once (others within budgets.Config.LimitsTTL).
		a.call(t, http.MethodPost, "/api/v1/chat/message", token, turn).decode(t, http.StatusOK, nil)
		a.call(t, http.MethodDelete, "/api/v1/admin/users/"+uid+"/budget", pair.AccessToken, "").decode(t, http.StatusOK, &view)
		if view.Override || view.Limits.DayTokens != 100 {
			t.Fatalf("after delete = %+v", view)
		}
		if r := a.call(t, http.MethodPost, "/api/v1/chat/message", token, turn); r.status != http.StatusPaymentRequired {
			t.Fatalf("back to the role's limit: %d %s", r.status, r.body)
		}
		var audit struct {
			Entries []struct {
				Action string `json:"action"`
			} `json:"entries"`
		}
		a.call(t, http.MethodGet, "/api/v1/admin/audit", pair.AccessToken, "").decode(t, http.StatusOK, &audit)
		raw, _ := json.Marshal(audit)
		if !strings.Contains(string(raw), "user.budget.set") || !strings.Contains(string(raw), "user.budget.delete") {
			t.Fatalf("audit = %s", raw)
		}
	})
}

// Parallel turns of one user over two nodes sharing Redis, at a budget of 4
// turns: each model call reserves its estimate in the same atomic step as the
// budget check, so no more than 4 turns (plus one per node) are answered and the
// model is called no more often, where checking before charging let every
// parallel turn through.
func TestBudgetsHoldUnderParallelTurns(t *testing.T) {
	db := persisttest.SQLite(t)
	rdb := testenv.Redis(t)
	prefix := "kowai-test:budget:" + rand.Text() + ":"
	srv := newFakeOpenAI(t, "paid answer", 10, 5)
	// Every call overlaps every other: none is charged before all are checked.
	srv.delay.Store(int64(500 * time.Millisecond))
	eps, err := lm.ParseEndpoints(fmt.Sprintf(`[{"name":"openai:paid-1","base_url":%q,"input_per_1k":0.001,"output_per_1k":0.002}]`, srv.URL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	const k, n = 4, 16
	roles := map[string]budgets.Limits{"user": {DayTokens: k * 15}}
	enforcer := func(w *persistence.Writer) *budgets.Enforcer {
		ledger := persistence.NewUsageStore(db)
		enf, err := budgets.New(budgets.Config{Roles: roles, Users: persistence.NewUserStore(db), Ledger: ledger,
			Counter: budgets.NewRedis(rdb, ledger, prefix), Writer: w})
		if err != nil {
			t.Fatal(err)
		}
		return enf
	}
	nodes := startStacks(t, db, 2, stackOptions{models: testCatalog(t, eps, nil), budgets: enforcer})
	_, token := signUp(t, nodes[0], "ada@example.com")
	var agent struct {
		ID string `json:"id"`
	}
	nodes[0].call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"paid","type":"chat","model":"openai:paid-1"}`).decode(t, http.StatusCreated, &agent)
	turn := fmt.Sprintf(`{"content":"hello","agent_id":%q}`, agent.ID)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		answered, other int
		start           = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			r := nodes[i%2].call(t, http.MethodPost, "/api/v1/chat/message", token, turn)
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case http.StatusOK:
				answered++
			case http.StatusPaymentRequired:
			default:
				other++
				t.Errorf("turn %d: %d %s", i, r.status, r.body)
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d of %d parallel turns answered at a budget of %d turns", answered, n, k)
	if answered < 1 || answered > k+2 || other > 0 {
		t.Fatalf("%d of %d parallel turns answered at a budget of %d turns on 2 nodes", answered, n, k)
	}
	if calls := srv.calls.Load(); calls != int64(answered) {
		t.Fatalf("the model was called %d times for %d answered turns", calls, answered)
	}
}
