package lm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/tmc/langchaingo/llms"
)

func rateLimited(after time.Duration) error {
	return &lm.ProviderError{Model: "scripted:model", Kind: lm.ErrRateLimited, Status: 429, RetryAfter: after, Err: errors.New("slow down")}
}

var unavailable = &lm.ProviderError{Model: "scripted:model", Kind: lm.ErrUnavailable, Status: 500, Err: errors.New("boom")}

// recordSleep collects the retry layer's waits instead of sleeping.
type recordSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recordSleep) sleep(_ context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delays = append(r.delays, d)
	return nil
}

func TestRetry(t *testing.T) {
	policy := lm.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Second, MaxDelay: 3 * time.Second, MaxRetryAfter: 10 * time.Second}
	half := func() float64 { return 0.5 }
	badRequest := &lm.ProviderError{Kind: lm.ErrBadRequest, Status: 400}
	timeout := &lm.ProviderError{Kind: lm.ErrTimeout}
	tests := []struct {
		name    string
		outputs []lmtest.Output
		calls   int
		delays  []time.Duration
		wantErr error
	}{
		{"success first", []lmtest.Output{{Text: "ok"}}, 1, nil, nil},
		{"retry-after then backoff", []lmtest.Output{{Err: rateLimited(7 * time.Second)}, {Err: unavailable}, {Err: timeout}, {Text: "ok"}}, 4,
			[]time.Duration{7 * time.Second, time.Second, 1500 * time.Millisecond}, nil},
		{"exhausted", []lmtest.Output{{Err: unavailable}, {Err: unavailable}, {Err: unavailable}, {Err: unavailable}}, 4,
			[]time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond}, lm.ErrUnavailable},
		{"not retryable", []lmtest.Output{{Err: badRequest}}, 1, nil, lm.ErrBadRequest},
		{"retry-after too long", []lmtest.Output{{Err: rateLimited(time.Minute)}}, 1, nil, lm.ErrRateLimited},
		{"circuit open stops", []lmtest.Output{{Err: unavailable}, {Err: lm.ErrCircuitOpen}}, 2, []time.Duration{500 * time.Millisecond}, lm.ErrCircuitOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := lmtest.NewScripted(tt.outputs)
			sl := &recordSleep{}
			metrics, reg := newMetrics(t)
			r := lm.NewRetry(m, policy, lm.WithSleep(sl.sleep), lm.WithRand(half), lm.WithMetrics(metrics))
			resp, err := r.Generate(t.Context(), userReq("q"))
			if tt.wantErr == nil && (err != nil || resp.Text != "ok") {
				t.Fatalf("got %v %+v", err, resp)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if m.Calls() != tt.calls || !equalDurations(sl.delays, tt.delays) {
				t.Fatalf("calls %d delays %v, want %d %v", m.Calls(), sl.delays, tt.calls, tt.delays)
			}
			retries := 0.0
			for _, kind := range []string{"rate_limited", "unavailable", "timeout"} {
				if v := metric(t, reg, "kowai_llm_retries_total", map[string]string{"provider": "scripted", "kind": kind}); v > 0 {
					retries += v
				}
			}
			if int(retries) != len(tt.delays) {
				t.Fatalf("retries metric %v, want %d", retries, len(tt.delays))
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRetryWaitsWithRealTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := lmtest.NewScripted([]lmtest.Output{{Err: rateLimited(3 * time.Second)}, {Text: "ok"}})
		var logs bytes.Buffer
		r := lm.NewRetry(m, lm.RetryPolicy{}, lm.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		start := time.Now()
		if _, err := r.Generate(t.Context(), userReq("q")); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Fatalf("waited %v, want the 3s Retry-After", waited)
		}
		if !strings.Contains(logs.String(), `msg="llm call retrying"`) || !strings.Contains(logs.String(), "kind=rate_limited") {
			t.Fatalf("retry not logged: %s", logs.String())
		}

		m.Push(lmtest.Output{Err: rateLimited(time.Second)})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if _, err := r.Generate(ctx, userReq("q")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled wait: %v", err)
		}
	})
}

func TestRetryNotAfterStreaming(t *testing.T) {
	streamThenFail := lm.Func{ID: "x:y", Fn: func(ctx context.Context, req *lm.Request) (*lm.Response, error) {
		if err := req.Stream(ctx, []byte("partial")); err != nil {
			return nil, err
		}
		return nil, unavailable
	}}
	calls := 0
	counted := lm.Func{ID: "x:y", Fn: func(ctx context.Context, req *lm.Request) (*lm.Response, error) {
		calls++
		return streamThenFail.Generate(ctx, req)
	}}
	req := userReq("q")
	req.Stream = func(context.Context, []byte) error { return nil }
	_, err := lm.NewRetry(counted, lm.RetryPolicy{}, lm.WithSleep((&recordSleep{}).sleep)).Generate(t.Context(), req)
	if !errors.Is(err, lm.ErrUnavailable) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestBreaker(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	metrics, reg := newMetrics(t)
	m := lmtest.NewScripted(nil)
	b := lm.NewBreaker(m, lm.BreakerPolicy{Threshold: 2, Cooldown: 10 * time.Second}, lm.WithClock(clock), lm.WithMetrics(metrics))
	state := func() float64 {
		return metric(t, reg, "kowai_llm_circuit_state", map[string]string{"provider": "scripted", "model": "model"})
	}
	call := func() error {
		_, err := b.Generate(t.Context(), userReq("q"))
		return err
	}

	m.Push(lmtest.Output{Err: unavailable}, lmtest.Output{Err: &lm.ProviderError{Kind: lm.ErrBadRequest}}, lmtest.Output{Err: unavailable})
	call()
	call() // a bad request neither counts nor resets
	if b.State() != lm.BreakerClosed || state() != 0 {
		t.Fatalf("state %v after one counted failure", b.State())
	}
	call()
	if b.State() != lm.BreakerOpen || state() != 2 {
		t.Fatalf("state %v after two failures", b.State())
	}
	if err := call(); !errors.Is(err, lm.ErrCircuitOpen) || m.Calls() != 3 {
		t.Fatalf("open circuit: %v, %d calls", err, m.Calls())
	}

	now = now.Add(10 * time.Second)
	if b.State() != lm.BreakerHalfOpen {
		t.Fatalf("after cool-down: %v", b.State())
	}
	m.Push(lmtest.Output{Err: unavailable})
	if err := call(); !errors.Is(err, lm.ErrUnavailable) || b.State() != lm.BreakerOpen {
		t.Fatalf("failed probe: %v, state %v", err, b.State())
	}

	now = now.Add(10 * time.Second)
	m.PushText("ok", "ok")
	if err := call(); err != nil || b.State() != lm.BreakerClosed || state() != 0 {
		t.Fatalf("good probe: %v, state %v", err, b.State())
	}
}

func TestBreakerSingleProbe(t *testing.T) {
	now := time.Now()
	release := make(chan struct{})
	probing := make(chan struct{})
	calls := 0
	slow := lm.Func{ID: "p:m", Fn: func(ctx context.Context, _ *lm.Request) (*lm.Response, error) {
		calls++
		if calls <= 1 {
			return nil, unavailable
		}
		close(probing)
		<-release
		return &lm.Response{Text: "ok"}, nil
	}}
	b := lm.NewBreaker(slow, lm.BreakerPolicy{Threshold: 1, Cooldown: time.Second}, lm.WithClock(func() time.Time { return now }))
	b.Generate(t.Context(), userReq("q"))
	now = now.Add(time.Second)
	done := make(chan error)
	go func() {
		_, err := b.Generate(context.Background(), userReq("probe"))
		done <- err
	}()
	<-probing
	if _, err := b.Generate(t.Context(), userReq("q")); !errors.Is(err, lm.ErrCircuitOpen) {
		t.Fatalf("second caller during probe: %v", err)
	}
	close(release)
	if err := <-done; err != nil || b.State() != lm.BreakerClosed {
		t.Fatalf("probe: %v, state %v", err, b.State())
	}
}

func TestFallback(t *testing.T) {
	primary := lmtest.NewScripted([]lmtest.Output{{Err: unavailable}}, lmtest.WithName("openai:gpt-4o"))
	second := lmtest.NewScripted([]lmtest.Output{{Err: lm.ErrCircuitOpen}}, lmtest.WithName("anthropic:claude"))
	third := lmtest.NewScripted([]lmtest.Output{{Text: "from third"}}, lmtest.WithName("offline:kowai-offline"))
	metrics, reg := newMetrics(t)
	f := lm.NewFallback([]lm.LM{primary, second, third}, lm.WithMetrics(metrics))
	resp, err := f.Generate(t.Context(), userReq("q"))
	if err != nil || resp.Text != "from third" || resp.Model != "offline:kowai-offline" || f.Name() != "openai:gpt-4o" {
		t.Fatalf("%v %+v", err, resp)
	}
	if metric(t, reg, "kowai_llm_fallbacks_total", map[string]string{"from": "openai:gpt-4o", "to": "anthropic:claude"}) != 1 ||
		metric(t, reg, "kowai_llm_fallbacks_total", map[string]string{"from": "anthropic:claude", "to": "offline:kowai-offline"}) != 1 {
		t.Fatal("fallbacks not counted")
	}

	primary.Push(lmtest.Output{Err: unavailable})
	second.Push(lmtest.Output{Err: lm.ErrAuth})
	third.Push(lmtest.Output{Err: lm.ErrBadRequest})
	_, err = f.Generate(t.Context(), userReq("q"))
	if !errors.Is(err, lm.ErrUnavailable) || !errors.Is(err, lm.ErrAuth) || !errors.Is(err, lm.ErrBadRequest) || !strings.Contains(err.Error(), "all 3 models") {
		t.Fatalf("all failed: %v", err)
	}

	primary.Push(lmtest.Output{Err: lm.ErrBudgetExceeded})
	if _, err := f.Generate(t.Context(), userReq("q")); !errors.Is(err, lm.ErrBudgetExceeded) || second.Calls() != 2 {
		t.Fatalf("budget must not fall back: %v, second called %d times", err, second.Calls())
	}
}

func TestCache(t *testing.T) {
	m := lmtest.NewScripted([]lmtest.Output{{Text: "cached answer", Usage: lm.Usage{PromptTokens: 5, CompletionTokens: 3}}})
	metrics, reg := newMetrics(t)
	c := lm.NewCache(m, lm.NewLRU(10), lm.WithMetrics(metrics))
	first, err := c.Generate(t.Context(), userReq("q"))
	if err != nil || first.CacheHit {
		t.Fatalf("%v %+v", err, first)
	}
	req := userReq("q")
	var chunks []string
	req.Stream = func(_ context.Context, b []byte) error { chunks = append(chunks, string(b)); return nil }
	hit, err := c.Generate(t.Context(), req)
	if err != nil || !hit.CacheHit || hit.Text != "cached answer" || hit.Usage != (lm.Usage{CacheHits: 1}) || m.Calls() != 1 {
		t.Fatalf("hit: %v %+v, %d calls", err, hit, m.Calls())
	}
	if strings.Join(chunks, "") != "cached answer" {
		t.Fatalf("replayed %q", chunks)
	}
	if metric(t, reg, "kowai_llm_cache_hits_total", map[string]string{"model": "scripted:model"}) != 1 ||
		metric(t, reg, "kowai_llm_cache_misses_total", map[string]string{"model": "scripted:model"}) != 1 {
		t.Fatal("cache metrics")
	}

	noCache := userReq("q")
	noCache.NoCache = true
	m.PushText("fresh")
	if resp, _ := c.Generate(t.Context(), noCache); resp.Text != "fresh" || resp.CacheHit {
		t.Fatalf("NoCache: %+v", resp)
	}
	rollout := userReq("q")
	rollout.RolloutID = "2"
	m.PushText("sample 2")
	if resp, _ := c.Generate(t.Context(), rollout); resp.Text != "sample 2" {
		t.Fatalf("rollout: %+v", resp)
	}
	if m.Calls() != 3 {
		t.Fatalf("calls %d", m.Calls())
	}
	m.Push(lmtest.Output{Err: unavailable})
	other := userReq("never cached")
	if _, err := c.Generate(t.Context(), other); !errors.Is(err, lm.ErrUnavailable) {
		t.Fatal(err)
	}
	m.PushText("now ok")
	if resp, _ := c.Generate(t.Context(), other); resp.Text != "now ok" {
		t.Fatalf("errors must not be cached: %+v", resp)
	}
}

func TestCacheKey(t *testing.T) {
	base := userReq("q")
	key := func(model string, mutate func(r *lm.Request)) string {
		r := *base
		if mutate != nil {
			mutate(&r)
		}
		k, err := lm.CacheKey(model, &r)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k0 := key("openai:gpt-4o", nil)
	same := map[string]func(*lm.Request){
		"stream":  func(r *lm.Request) { r.Stream = func(context.Context, []byte) error { return nil } },
		"nocache": func(r *lm.Request) { r.NoCache = true },
	}
	for name, mut := range same {
		if key("openai:gpt-4o", mut) != k0 {
			t.Errorf("%s changed the key", name)
		}
	}
	differ := map[string]func(*lm.Request){
		"messages":    func(r *lm.Request) { r.Messages = userReq("other").Messages },
		"temperature": func(r *lm.Request) { r.Temperature = 0.7 },
		"max tokens":  func(r *lm.Request) { r.MaxTokens = 9 },
		"stop":        func(r *lm.Request) { r.Stop = []string{"x"} },
		"json":        func(r *lm.Request) { r.JSONMode = true },
		"rollout":     func(r *lm.Request) { r.RolloutID = "1" },
	}
	for name, mut := range differ {
		if key("openai:gpt-4o", mut) == k0 {
			t.Errorf("%s did not change the key", name)
		}
	}
	if key("openai:gpt-4o-mini", nil) == k0 || len(k0) != 64 {
		t.Error("model must be part of a SHA-256 key")
	}
	// Every string is written with its length: moving text between messages,
	// parts or roles, and the other fields the old JSON form covered, change the key.
	seed, other := 1, 2
	parts := func(role llms.ChatMessageType, texts ...string) llms.MessageContent {
		return llms.TextParts(role, texts...)
	}
	distinct := map[string]func(*lm.Request){
		"base":       nil,
		"split ab|c": func(r *lm.Request) { r.Messages = []llms.MessageContent{parts("human", "ab"), parts("human", "c")} },
		"split a|bc": func(r *lm.Request) { r.Messages = []llms.MessageContent{parts("human", "a"), parts("human", "bc")} },
		"parts a|bc": func(r *lm.Request) { r.Messages = []llms.MessageContent{parts("human", "a", "bc")} },
		"role":       func(r *lm.Request) { r.Messages = []llms.MessageContent{parts("ai", "a", "bc")} },
		"image": func(r *lm.Request) {
			r.Messages = []llms.MessageContent{{Role: "human", Parts: []llms.ContentPart{llms.ImageURLPart("a")}}}
		},
		"text like url":  func(r *lm.Request) { r.Messages = []llms.MessageContent{parts("human", "a")} },
		"seed":           func(r *lm.Request) { r.Seed = &seed },
		"other seed":     func(r *lm.Request) { r.Seed = &other },
		"tools":          func(r *lm.Request) { r.Tools = []llms.Tool{{Type: "function"}} },
		"stop empty":     func(r *lm.Request) { r.Stop = []string{""} },
		"negative temp":  func(r *lm.Request) { r.Temperature = -0.7 },
		"rollout+stop":   func(r *lm.Request) { r.RolloutID, r.Stop = "x", nil },
		"stop x rollout": func(r *lm.Request) { r.Stop = []string{"x"}; r.RolloutID = "" },
	}
	seen := make(map[string]string)
	for name, mut := range distinct {
		k := key("m", mut)
		if prev, dup := seen[k]; dup {
			t.Errorf("%s and %s share a key", name, prev)
		}
		seen[k] = name
	}
	if key("m", distinct["split ab|c"]) != key("m", distinct["split ab|c"]) {
		t.Error("the key is not deterministic")
	}
}

// chatRequest is a chat turn's request with a full history window: a system
// message and window messages of about 300 bytes.
func chatRequest(window int) *lm.Request {
	msgs := []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeSystem, strings.Repeat("You are a helpful assistant. ", 20))}
	for i := range window {
		role := llms.ChatMessageTypeHuman
		if i%2 == 1 {
			role = llms.ChatMessageTypeAI
		}
		msgs = append(msgs, llms.TextParts(role, strings.Repeat(fmt.Sprintf("message %d of the history. ", i), 12)))
	}
	return &lm.Request{Messages: msgs, Temperature: 0.2, MaxTokens: 512}
}

// BenchmarkCacheKey measures CacheKey on a chat turn's request (system message
// and a 20-message history, about 7 KB of text) against the JSON encoding plus
// SHA-256 it replaced, alternating in this run.
// Goal: x-vs-baseline <= 0.5 (time per key), and fewer bytes allocated.
func BenchmarkCacheKey(b *testing.B) {
	req := chatRequest(20)
	jsonKey := func() {
		canonical := struct {
			Model       string                `json:"model"`
			Messages    []llms.MessageContent `json:"messages"`
			Temperature float64               `json:"temperature"`
			MaxTokens   int                   `json:"max_tokens"`
			Stop        []string              `json:"stop"`
			JSONMode    bool                  `json:"json_mode"`
			Tools       []llms.Tool           `json:"tools"`
			RolloutID   string                `json:"rollout_id"`
			Seed        *int                  `json:"seed,omitempty"`
		}{"offline:kowai-offline", req.Messages, req.Temperature, req.MaxTokens, req.Stop, req.JSONMode, req.Tools, req.RolloutID, req.Seed}
		j, err := json.Marshal(canonical)
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(j)
		_ = hex.EncodeToString(sum[:])
	}
	newKey := func() {
		if _, err := lm.CacheKey("offline:kowai-offline", req); err != nil {
			b.Fatal(err)
		}
	}
	const per = 200
	var ours, base time.Duration
	var oursBytes, baseBytes uint64
	measure := func(f func(), d *time.Duration, alloc *uint64) {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		for range per {
			f()
		}
		*d += time.Since(start)
		runtime.ReadMemStats(&m1)
		*alloc += m1.TotalAlloc - m0.TotalAlloc
	}
	n := 0
	for b.Loop() {
		measure(newKey, &ours, &oursBytes)
		measure(jsonKey, &base, &baseBytes)
		n += per
	}
	b.ReportMetric(float64(ours.Nanoseconds())/float64(n), "ns/key")
	b.ReportMetric(float64(base.Nanoseconds())/float64(n), "baseline-ns/key")
	b.ReportMetric(float64(ours)/float64(base), "x-vs-baseline")
	b.ReportMetric(float64(oursBytes)/float64(n), "B/key")
	b.ReportMetric(float64(baseBytes)/float64(n), "baseline-B/key")
}

func TestLRUEvicts(t *testing.T) {
	l := lm.NewLRU(2)
	ctx := t.Context()
	l.Set(ctx, "a", []byte("1"))
	l.Set(ctx, "b", []byte("2"))
	l.Get(ctx, "a")
	l.Set(ctx, "c", []byte("3"))
	if _, ok, _ := l.Get(ctx, "b"); ok || l.Len() != 2 {
		t.Fatal("least recently used entry b should be gone")
	}
	if v, ok, _ := l.Get(ctx, "a"); !ok || string(v) != "1" {
		t.Fatal("a should remain")
	}
}

func TestBudgetAndMeter(t *testing.T) {
	m := lmtest.NewScripted(nil, lmtest.WithRespond(func(*lm.Request) lmtest.Output {
		return lmtest.Output{Text: "x", Usage: lm.Usage{PromptTokens: 15, CompletionTokens: 5, CostUSD: 0.01}}
	}))
	meter := lm.NewMeter()
	a := lm.NewAccounting(m, meter, lm.NewBudget(0, 40))
	for i := range 2 {
		if _, err := a.Generate(t.Context(), userReq("q")); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := a.Generate(t.Context(), userReq("q"))
	if !errors.Is(err, lm.ErrBudgetExceeded) || !strings.Contains(err.Error(), "used 40 of the 40 token limit over 2 calls") || m.Calls() != 2 {
		t.Fatalf("got %v after %d calls", err, m.Calls())
	}
	want := lm.Usage{PromptTokens: 30, CompletionTokens: 10, Calls: 2, CostUSD: 0.02}
	if got := meter.Total(); got != want || meter.ByModel()["scripted:model"] != want {
		t.Fatalf("meter %+v %+v", got, meter.ByModel())
	}

	usd := lm.NewAccounting(m, nil, lm.NewBudget(0.015, 0))
	usd.Generate(t.Context(), userReq("q"))
	usd.Generate(t.Context(), userReq("q"))
	if _, err := usd.Generate(t.Context(), userReq("q")); !errors.Is(err, lm.ErrBudgetExceeded) || !strings.Contains(err.Error(), "of the $0.015000 limit") {
		t.Fatalf("usd budget: %v", err)
	}
}

func TestContextMeterAndBudget(t *testing.T) {
	m := lmtest.NewScripted(nil, lmtest.WithRespond(func(*lm.Request) lmtest.Output {
		return lmtest.Output{Text: "x", Usage: lm.Usage{PromptTokens: 1, CompletionTokens: 1}}
	}))
	global := lm.NewMeter()
	a := lm.NewAccounting(m, global, nil)
	run := lm.NewMeter()
	ctx := lm.ContextWithMeter(t.Context(), run)
	ctx = lm.ContextWithBudget(ctx, lm.NewBudget(0, 4))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := a.Generate(ctx, userReq("q")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	a.Generate(t.Context(), userReq("outside the run"))
	if run.Total().Calls != 2 || global.Total().Calls != 3 {
		t.Fatalf("run %+v global %+v", run.Total(), global.Total())
	}
	if _, err := a.Generate(ctx, userReq("q")); !errors.Is(err, lm.ErrBudgetExceeded) {
		t.Fatalf("run budget: %v", err)
	}
}

func TestInstrumented(t *testing.T) {
	metrics, reg := newMetrics(t)
	m := lmtest.NewScripted([]lmtest.Output{
		{Text: "x", Usage: lm.Usage{PromptTokens: 10, CompletionTokens: 4, CachedTokens: 2, CostUSD: 0.5}},
		{Err: rateLimited(0)},
	}, lmtest.WithName("openai:gpt-4o"))
	i := lm.NewInstrumented(m, lm.WithMetrics(metrics))
	i.Generate(t.Context(), userReq("q"))
	i.Generate(t.Context(), userReq("q"))
	labels := func(kind string) map[string]string {
		return map[string]string{"provider": "openai", "model": "gpt-4o", "kind": kind}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kowai_llm_tokens_total", labels("prompt"), 10},
		{"kowai_llm_tokens_total", labels("completion"), 4},
		{"kowai_llm_tokens_total", labels("cached"), 2},
		{"kowai_llm_cost_usd_total", map[string]string{"provider": "openai", "model": "gpt-4o"}, 0.5},
		{"kowai_llm_request_duration_seconds", map[string]string{"provider": "openai", "model": "gpt-4o"}, 2},
		{"kowai_llm_errors_total", map[string]string{"provider": "openai", "kind": "rate_limited"}, 1},
	}
	for _, c := range checks {
		if got := metric(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
