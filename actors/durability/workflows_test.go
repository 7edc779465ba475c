package durability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

const (
	// workflowRuns is how many runs the kill scenario starts.
	workflowRuns = 30
	// modelDelay holds every model reply back, so runs are mid-flight long
	// enough for the kill to land inside them.
	modelDelay = 700 * time.Millisecond
)

// countingModel is an OpenAI-compatible server in front of lmtest's fake: it
// counts every request it receives by the last user message (which names the
// run and task the call belongs to), holds it back modelDelay, then lets the
// fake answer with the offline model. A request is counted when it arrives,
// so a call whose caller died while it waited is counted too: a call paid.
type countingModel struct {
	URL   string
	total atomic.Int64

	mu    sync.Mutex
	calls map[string]int
}

func newCountingModel(t *testing.T, delay time.Duration) *countingModel {
	t.Helper()
	fake := lmtest.NewOpenAIServer(t)
	target, err := url.Parse(strings.TrimSuffix(fake.URL, "/v1"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // streamed replies pass through as they come
	m := &countingModel{calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m.count(raw)
		select {
		case <-r.Context().Done():
			return
		case <-time.After(delay):
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.ContentLength = int64(len(raw))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.URL = srv.URL + "/v1"
	return m
}

// count records one chat-completions request under its last user message.
func (m *countingModel) count(body []byte) {
	var req struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	last := ""
	if json.Unmarshal(body, &req) == nil {
		for _, msg := range req.Messages {
			if msg.Role == "user" {
				last = messageText(msg.Content)
			}
		}
	}
	m.total.Add(1)
	m.mu.Lock()
	m.calls[last]++
	m.mu.Unlock()
}

// messageText reads an OpenAI message content: a string or text parts.
func messageText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts) // anything else counts under ""
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// callsWhere sums the calls whose last user message satisfies match, and
// marks them claimed.
func (m *countingModel) callsWhere(claimed map[string]bool, match func(string) bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for msg, c := range m.calls {
		if match(msg) {
			n += c
			claimed[msg] = true
		}
	}
	return n
}

// wfStatus is the part of GET /api/v1/workflows/{id}/status the test reads.
type wfStatus struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Result struct {
		Plan []string `json:"plan"`
	} `json:"result"`
	Tasks []struct {
		Seq        int       `json:"seq"`
		Name       string    `json:"name"`
		Status     string    `json:"status"`
		Attempts   int       `json:"attempts"`
		FinishedAt time.Time `json:"finished_at"`
	} `json:"tasks"`
}

// TestWorkflowRunsSurviveKill: three `kowai serve` processes on MariaDB run thirty
// five-task workflows (research with three parts: a plan, three answers in parallel, a
// synthesis, each an agent turn whose model call reaches a counting OpenAI-compatible
// server); the node hosting most runs is killed with SIGKILL mid-run. Every run must
// complete without a client doing anything, no task journaled before the kill may call
// the model again, and no task may call it more often than its recorded attempts.
func TestWorkflowRunsSurviveKill(t *testing.T) {
	persisttest.MySQLDSN(t) // skip or fail before the build when MariaDB is not configured
	bin := clustertest.BuildBinary(t, "github.com/kowai/kowai/cmd/kowai")
	model := newCountingModel(t, modelDelay)
	c := newCluster(t, bin, "automanaged", 3)
	for _, n := range c.nodes {
		// The reply cache would hide a repeated call from the counting server.
		n.env = append(n.env, "KOWAI_LLM_PROVIDER=openai", "KOWAI_LLM_BASE_URL="+model.URL,
			"KOWAI_LLM_MODEL=test-model", "KOWAI_LLM_CACHE=false")
	}
	c.start(c.nodes...)
	token := c.register(c.nodes[0], "runner@durability.test")

	questions := map[string]string{}
	var ids []string
	for i := range workflowRuns {
		q := fmt.Sprintf("How do durable run %02d-%s behave", i, randomHex(t, 4))
		n := c.nodes[i%len(c.nodes)]
		status, raw, err := c.do(t.Context(), n, http.MethodPost, "/api/v1/workflows/trigger", token, "",
			map[string]any{"name": "research", "parameters": map[string]any{"question": q, "parts": 3}})
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("trigger on node %d: %d %s %v", n.index, status, raw, err)
		}
		var acc struct {
			RunID string `json:"run_id"`
		}
		if err := json.Unmarshal(raw, &acc); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, acc.RunID)
		questions[acc.RunID] = q
	}

	// The victim is the node the hash gives most runs, among those not hosting the
	// agents the tasks call: a dead agent host fails every run's calls for as long as
	// the cluster takes to notice, which tests the retry budget, not run recovery.
	addrs := c.memberAddresses()
	agentHosts := map[string]bool{owner(agents.BuiltinID("chat"), addrs): true, owner(agents.BuiltinID("analysis"), addrs): true}
	placed := map[string][]string{}
	for _, id := range ids {
		a := owner(id, addrs)
		placed[a] = append(placed[a], id)
	}
	var victim *kowaiNode
	for _, n := range c.nodes {
		t.Logf("node %d (%s): %d runs placed by hash, hosts agents: %v", n.index, n.clusterAddr, len(placed[n.clusterAddr]), agentHosts[n.clusterAddr])
		if agentHosts[n.clusterAddr] && len(agentHosts) < len(c.nodes) {
			continue
		}
		if victim == nil || len(placed[n.clusterAddr]) > len(placed[victim.clusterAddr]) {
			victim = n
		}
	}
	moved := placed[victim.clusterAddr]

	// Kill once every plan has been asked for and the answers are under way: each
	// run is past its first task and has more to do.
	testenv.Eventually(t, loadTimeout, func() error {
		if got := model.total.Load(); got < 2*workflowRuns {
			return fmt.Errorf("%d model calls so far", got)
		}
		return nil
	})
	killed := time.Now()
	c.kill(victim)
	t.Logf("killed node %d (%s, %d of %d runs) with SIGKILL after %d model calls",
		victim.index, victim.clusterAddr, len(moved), workflowRuns, model.total.Load())

	statuses := map[string]wfStatus{}
	testenv.Eventually(t, 90*time.Second, func() error {
		for _, id := range ids {
			if st, ok := statuses[id]; ok && st.Status == "completed" {
				continue
			}
			var st wfStatus
			if err := c.get(c.live()[0], "/api/v1/workflows/"+id+"/status", token, &st); err != nil {
				return err
			}
			switch st.Status {
			case "failed", "cancelled":
				t.Fatalf("run %s ended %s: %s", id, st.Status, st.Error)
			}
			statuses[id] = st
			if st.Status != "completed" {
				return fmt.Errorf("run %s is %s", id, st.Status)
			}
		}
		return nil
	})
	allDone := time.Since(killed)

	// Calls per task: never more than the attempts the journal recorded, and
	// exactly one for a task journaled before the kill.
	claimed := map[string]bool{}
	tasks, before, retried := 0, 0, 0
	for _, id := range ids {
		st, q := statuses[id], questions[id]
		if len(st.Tasks) != 5 || len(st.Result.Plan) != 3 {
			t.Fatalf("run %s: %d tasks, plan %v; want 5 tasks and 3 parts", id, len(st.Tasks), st.Result.Plan)
		}
		for _, task := range st.Tasks {
			// The agent wraps the task's message in its signature's prompt.
			const planned, combined = "Split this question into", "Combine these answers"
			var match func(string) bool
			switch {
			case task.Name == "plan":
				match = func(m string) bool { return strings.Contains(m, planned) && strings.Contains(m, q) }
			case task.Name == "synthesize":
				match = func(m string) bool { return strings.Contains(m, combined) && strings.Contains(m, q) }
			case strings.HasPrefix(task.Name, "answer["):
				var i int
				if _, err := fmt.Sscanf(task.Name, "answer[%d]", &i); err != nil || i >= len(st.Result.Plan) {
					t.Fatalf("run %s: task %q", id, task.Name)
				}
				sub := st.Result.Plan[i]
				match = func(m string) bool {
					return strings.Contains(m, sub) && !strings.Contains(m, combined) && !strings.Contains(m, planned)
				}
			default:
				t.Fatalf("run %s: unexpected task %q", id, task.Name)
			}
			calls := model.callsWhere(claimed, match)
			tasks++
			if task.Attempts > 1 {
				retried++
			}
			switch {
			case task.Status != "completed":
				t.Errorf("run %s task %s is %s", id, task.Name, task.Status)
			case calls < 1 || calls > task.Attempts:
				t.Errorf("run %s task %s: %d model calls, %d attempts recorded", id, task.Name, calls, task.Attempts)
			case task.FinishedAt.Before(killed):
				before++
				if calls != 1 {
					t.Errorf("run %s task %s journaled before the kill called the model %d times", id, task.Name, calls)
				}
			}
		}
	}
	model.mu.Lock()
	var stray []string
	for msg, n := range model.calls {
		if !claimed[msg] {
			stray = append(stray, fmt.Sprintf("%q x%d", msg, n))
		}
	}
	model.mu.Unlock()
	if len(stray) > 0 {
		t.Errorf("model calls that belong to no task: %v", stray)
	}

	// Recovery: for each run of the killed node still open at the kill, the time to
	// its first event after the kill, read from the run's own events.
	var resumed []time.Duration
	for _, id := range moved {
		if d, ok := firstEventAfter(t, c, token, id, killed); ok {
			resumed = append(resumed, d)
		}
	}
	first, last := time.Duration(0), time.Duration(0)
	if len(resumed) > 0 {
		first, last = slices.Min(resumed), slices.Max(resumed)
	}
	report(t, fmt.Sprintf("durability %s: %d runs x 5 tasks, %d on the killed node (%d open at the kill); model calls=%d for %d tasks (%d journaled before the kill, each called once; %d retried); time-to-recover after kill -9: first run resumed %s, all %s; all runs completed %s after the kill",
		t.Name(), workflowRuns, len(moved), len(resumed), model.total.Load(), tasks, before, retried,
		first.Round(time.Millisecond), last.Round(time.Millisecond), allDone.Round(time.Millisecond)))
}

// firstEventAfter reads run id's events stream to its result and returns how long
// after since its first event stamped later than since came, if there was one before
// the run finished.
func firstEventAfter(t *testing.T, c *kowaiCluster, token, id string, since time.Time) (time.Duration, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	n := c.live()[0]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.httpURL+"/api/v1/workflows/"+id+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("events of %s: %d", id, res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event != "result":
			var e struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e) == nil && e.Time.After(since) {
				return e.Time.Sub(since), true
			}
		case strings.HasPrefix(line, "data: "):
			return 0, false
		}
	}
	t.Fatalf("events of %s ended without a result: %v", id, sc.Err())
	return 0, false
}
