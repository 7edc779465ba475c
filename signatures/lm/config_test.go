package lm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"

	"github.com/kowai/kowai/internal/testenv"
)

func TestParseFallback(t *testing.T) {
	tests := []struct {
		in      string
		want    []lm.ModelSpec
		wantErr string
	}{
		{"", nil, ""},
		{"openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest", []lm.ModelSpec{{"openai", "gpt-4o-mini"}, {"anthropic", "claude-3-5-haiku-latest"}}, ""},
		{"ollama:llama3.2:8b", []lm.ModelSpec{{"ollama", "llama3.2:8b"}}, ""},
		{"gpt-4o", nil, `KOWAI_LLM_FALLBACK entry 1 "gpt-4o": want provider:model`},
		{"openai:a,,offline:b", nil, "KOWAI_LLM_FALLBACK entry 2 is empty"},
		{"acme:x", nil, "provider one of offline, openai, anthropic, ollama"},
		{"openai:", nil, `entry 1 "openai:"`},
	}
	for _, tt := range tests {
		got, err := lm.ParseFallback(tt.in)
		if tt.wantErr != "" {
			if !errors.Is(err, lm.ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%q: got %v %v", tt.in, got, err)
		}
	}
}

func TestParsePrices(t *testing.T) {
	p, err := lm.ParsePrices("openai:gpt-4o=2/8, custom:m=1/2/0.5")
	if err != nil || p["openai:gpt-4o"] != (lm.Price{Input: 2, Output: 8}) || p["custom:m"] != (lm.Price{Input: 1, Output: 2, Cached: 0.5}) {
		t.Fatalf("%v %v", p, err)
	}
	for _, bad := range []string{"gpt-4o=1/2", "openai:x=1", "openai:x=a/b", "openai:x=-1/2"} {
		if _, err := lm.ParsePrices(bad); !errors.Is(err, lm.ErrConfig) || !strings.Contains(err.Error(), "KOWAI_LLM_PRICES") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	u := lm.Usage{PromptTokens: 1_000_000, CachedTokens: 500_000, CompletionTokens: 1_000_000}
	if got := lm.DefaultPrices().With(p).Cost("openai:gpt-4o", u); got != 1+1+8 {
		t.Fatalf("cost with override (cached priced as input) = %v", got)
	}
	if got := lm.DefaultPrices().Cost("offline:anything", u); got != 0 {
		t.Fatalf("offline cost %v", got)
	}
}

func TestNewConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  lm.Config
		want string
	}{
		{lm.Config{Provider: "acme"}, `KOWAI_LLM_PROVIDER "acme"`},
		{lm.Config{Provider: "openai"}, "set KOWAI_LLM_API_KEY or OPENAI_API_KEY"},
		{lm.Config{Provider: "anthropic"}, "set KOWAI_LLM_API_KEY or ANTHROPIC_API_KEY"},
		{lm.Config{Fallback: "nope"}, "KOWAI_LLM_FALLBACK"},
		{lm.Config{Fallback: "anthropic:claude-3-5-haiku-latest"}, "ANTHROPIC_API_KEY"},
		{lm.Config{CacheRedisURL: "http://x"}, "Redis cache URL"},
	}
	for _, tt := range tests {
		if _, err := lm.New(tt.cfg); !errors.Is(err, lm.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestNewDefaultIsOffline(t *testing.T) {
	m, err := lm.New(lm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := m.Generate(t.Context(), userReq("hello"))
	if err != nil || m.Name() != "offline:kowai-offline" || !strings.Contains(resp.Text, "offline model") || resp.Usage.CostUSD != 0 || resp.Usage.PromptTokens == 0 {
		t.Fatalf("%v %s %+v", err, m.Name(), resp)
	}
	again, _ := m.Generate(t.Context(), userReq("hello"))
	if !again.CacheHit || m.Meter().Total().Calls != 1 || m.Meter().Total().CacheHits != 1 {
		t.Fatalf("second call %+v, meter %+v", again, m.Meter().Total())
	}
}

// TestNewFullStack drives the whole stack over the fake servers: the
// OpenAI-compatible primary fails (500, 429 with Retry-After, 500) until its
// retries run out, the call falls back to the Anthropic server, the answer
// is cached, the primary answers again, and the budget then stops further
// calls.
func TestNewFullStack(t *testing.T) {
	openaiSrv := lmtest.NewOpenAIServer(t,
		lmtest.Reply{Status: 500}, lmtest.Reply{Status: 429, RetryAfter: "1"}, lmtest.Reply{Status: 500})
	anthropicSrv := lmtest.NewAnthropicServer(t,
		lmtest.Reply{Text: "from claude", PromptTokens: 1000, CompletionTokens: 500},
		lmtest.Reply{Text: "second", PromptTokens: 1000, CompletionTokens: 500})
	metrics, reg := newMetrics(t)
	sl := &recordSleep{}
	m, err := lm.New(lm.Config{
		Provider:         "openai",
		Model:            "local-model",
		BaseURL:          openaiSrv.URL,
		Fallback:         "anthropic:claude-3-5-haiku-latest",
		FallbackBaseURLs: map[string]string{"anthropic": anthropicSrv.URL},
		AnthropicAPIKey:  "sk-ant-test",
		Prices:           lm.Prices{"anthropic:claude-3-5-haiku-latest": {Input: 1000, Output: 2000}, "openai:local-model": {Input: 1000}},
		BudgetUSD:        2.5,
		Retry:            lm.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond},
		Breaker:          lm.BreakerPolicy{Threshold: 10},
	}, lm.WithMetrics(metrics), lm.WithSleep(sl.sleep), lm.WithRand(func() float64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	resp, err := m.Generate(t.Context(), userReq("q"))
	if err != nil || resp.Text != "from claude" || resp.Model != "anthropic:claude-3-5-haiku-latest" || resp.Usage.CostUSD != 2 {
		t.Fatalf("%v %+v", err, resp)
	}
	if got := len(openaiSrv.Requests()); got != 3 {
		t.Fatalf("openai server saw %d requests", got)
	}
	if h := openaiSrv.Requests()[0].Header.Get("Authorization"); h != "Bearer kowai-no-key" {
		t.Fatalf("authorization header %q", h)
	}
	if h := anthropicSrv.Requests()[0].Header.Get("X-Api-Key"); h != "sk-ant-test" {
		t.Fatalf("anthropic key header %q", h)
	}
	if !equalDurations(sl.delays, []time.Duration{0, time.Second}) {
		t.Fatalf("delays %v", sl.delays)
	}

	hit, err := m.Generate(t.Context(), userReq("q"))
	if err != nil || !hit.CacheHit || hit.Text != "from claude" || hit.Usage != (lm.Usage{CacheHits: 1}) {
		t.Fatalf("cache: %v %+v", err, hit)
	}
	openaiSrv.Push(lmtest.Reply{Text: "primary is back", PromptTokens: 1000})
	if resp, err := m.Generate(t.Context(), userReq("another question")); err != nil || resp.Usage.CostUSD != 1 {
		t.Fatalf("%v %+v", err, resp)
	}
	_, err = m.Generate(t.Context(), userReq("a third question"))
	if !errors.Is(err, lm.ErrBudgetExceeded) || len(openaiSrv.Requests()) != 4 || len(anthropicSrv.Requests()) != 1 {
		t.Fatalf("budget: %v, requests %d %d", err, len(openaiSrv.Requests()), len(anthropicSrv.Requests()))
	}
	want := lm.Usage{PromptTokens: 2000, CompletionTokens: 500, Calls: 2, CacheHits: 1, CostUSD: 3}
	if got := m.Meter().Total(); got != want {
		t.Fatalf("meter %+v", got)
	}

	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kowai_llm_errors_total", map[string]string{"provider": "openai", "kind": "unavailable"}, 2},
		{"kowai_llm_errors_total", map[string]string{"provider": "openai", "kind": "rate_limited"}, 1},
		{"kowai_llm_retries_total", map[string]string{"provider": "openai", "kind": "unavailable"}, 1},
		{"kowai_llm_retries_total", map[string]string{"provider": "openai", "kind": "rate_limited"}, 1},
		{"kowai_llm_fallbacks_total", map[string]string{"from": "openai:local-model", "to": "anthropic:claude-3-5-haiku-latest"}, 1},
		{"kowai_llm_request_duration_seconds", map[string]string{"provider": "openai", "model": "local-model"}, 4},
		{"kowai_llm_request_duration_seconds", map[string]string{"provider": "anthropic", "model": "claude-3-5-haiku-latest"}, 1},
		{"kowai_llm_tokens_total", map[string]string{"provider": "anthropic", "kind": "prompt"}, 1000},
		{"kowai_llm_cost_usd_total", map[string]string{"provider": "anthropic"}, 2},
		{"kowai_llm_cache_hits_total", map[string]string{"model": "openai:local-model"}, 1},
		{"kowai_llm_cache_misses_total", map[string]string{"model": "openai:local-model"}, 2},
		{"kowai_llm_cost_usd_total", map[string]string{"provider": "openai"}, 1},
		{"kowai_llm_circuit_state", map[string]string{"provider": "openai", "model": "local-model"}, 0},
	}
	for _, c := range checks {
		if got := metric(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// TestNewOllama drives the stack over the fake Ollama server: a 500, a 429
// with Retry-After and a timed-out attempt are retried as classified, and
// the answer's usage comes from the final chunk's token counts.
func TestNewOllama(t *testing.T) {
	srv := lmtest.NewOllamaServer(t,
		lmtest.Reply{Status: 500, ErrorMessage: "model runner crashed"}, lmtest.Reply{Status: 429, RetryAfter: "2"},
		lmtest.Reply{Text: "late", Delay: 5 * time.Second}, lmtest.Reply{Text: "from llama", PromptTokens: 12, CompletionTokens: 5})
	metrics, reg := newMetrics(t)
	sl := &recordSleep{}
	m, err := lm.New(lm.Config{
		Provider: "ollama",
		BaseURL:  srv.URL,
		Timeout:  500 * time.Millisecond,
		Retry:    lm.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond},
	}, lm.WithMetrics(metrics), lm.WithSleep(sl.sleep), lm.WithRand(func() float64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := m.Generate(t.Context(), userReq("q"))
	if err != nil || resp.Text != "from llama" || resp.Model != "ollama:llama3.2" {
		t.Fatalf("%v %+v", err, resp)
	}
	if want := (lm.Usage{PromptTokens: 12, CompletionTokens: 5, Calls: 1}); resp.Usage != want || m.Meter().Total() != want {
		t.Fatalf("usage %+v, meter %+v", resp.Usage, m.Meter().Total())
	}
	reqs := srv.Requests()
	if len(reqs) != 4 || reqs[0].Path != "/api/chat" || reqs[0].Body["model"] != "llama3.2" {
		t.Fatalf("%d requests, first %+v", len(reqs), reqs[0])
	}
	if !equalDurations(sl.delays, []time.Duration{0, 2 * time.Second, 0}) {
		t.Fatalf("delays %v", sl.delays)
	}
	for _, kind := range []string{"unavailable", "rate_limited", "timeout"} {
		labels := map[string]string{"provider": "ollama", "kind": kind}
		if got := metric(t, reg, "kowai_llm_retries_total", labels); got != 1 {
			t.Errorf("retries%v = %v", labels, got)
		}
		if got := metric(t, reg, "kowai_llm_errors_total", labels); got != 1 {
			t.Errorf("errors%v = %v", labels, got)
		}
	}
}

// TestRedisCache needs KOWAI_TEST_REDIS_URL.
func TestRedisCache(t *testing.T) {
	client := testenv.Redis(t)
	prefix := fmt.Sprintf("kowai-test:lm:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
	})

	build := func() (lm.LM, *lmtest.OpenAIServer) {
		srv := lmtest.NewOpenAIServer(t, lmtest.Reply{Text: "shared"})
		m, err := lm.New(lm.Config{Provider: "openai", BaseURL: srv.URL, CachePrefix: prefix, CacheTTL: time.Minute}, lm.WithRedis(client))
		if err != nil {
			t.Fatal(err)
		}
		return m, srv
	}
	first, srv1 := build()
	if resp, err := first.Generate(t.Context(), userReq("q")); err != nil || resp.CacheHit {
		t.Fatalf("%v %+v", err, resp)
	}
	// A second process with its own server shares the cache through Redis.
	second, srv2 := build()
	resp, err := second.Generate(t.Context(), userReq("q"))
	if err != nil || !resp.CacheHit || resp.Text != "shared" || len(srv2.Requests()) != 0 || len(srv1.Requests()) != 1 {
		t.Fatalf("%v %+v", err, resp)
	}
	keys, err := client.Keys(t.Context(), prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	if ttl := client.TTL(t.Context(), keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
}
