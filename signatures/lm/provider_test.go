package lm_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/tmc/langchaingo/llms"
)

func openProvider(t *testing.T, provider, model, url string, opts ...lm.Option) *lm.Provider {
	t.Helper()
	p, err := lm.OpenProvider(lm.ProviderConfig{ModelSpec: lm.ModelSpec{Provider: provider, Model: model}, BaseURL: url, APIKey: "sk-test", Timeout: 2 * time.Second}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var weatherTool = llms.ToolCall{ID: "call_1", Type: "function", FunctionCall: &llms.FunctionCall{Name: "weather", Arguments: `{"city":"Paris"}`}}

// fakeServer is what the provider tests use of the lmtest servers.
type fakeServer interface {
	Push(...lmtest.Reply)
	Requests() []lmtest.Recorded
}

// TestProvidersThroughLangchaingo drives each HTTP provider's real
// langchaingo client against its fake server.
func TestProvidersThroughLangchaingo(t *testing.T) {
	// sentTopLevel and sentInOptions report whether a request body carries
	// model and the settings of the json subtest (temperature 0.5, at most
	// 64 tokens, stop at END) where OpenAI and Anthropic put them, and where
	// Ollama does.
	sentTopLevel := func(body map[string]any, model string) bool {
		return body["model"] == model && body["temperature"] == 0.5
	}
	sentInOptions := func(body map[string]any, model string) bool {
		o, _ := body["options"].(map[string]any)
		stop, _ := o["stop"].([]any)
		return body["model"] == model && o["temperature"] == 0.5 && o["num_predict"] == 64.0 && len(stop) == 1 && stop[0] == "END"
	}
	providers := []struct {
		provider, model string
		start           func(t *testing.T) (fakeServer, string)
		prices          lm.Prices
		// cached and tools: the API reports cached tokens and the client
		// offers tools.
		cached, tools bool
		sent          func(body map[string]any, model string) bool
	}{
		{"openai", "gpt-4o", func(t *testing.T) (fakeServer, string) { s := lmtest.NewOpenAIServer(t); return s, s.URL },
			nil, true, true, sentTopLevel},
		{"anthropic", "claude-3-5-haiku-latest", func(t *testing.T) (fakeServer, string) { s := lmtest.NewAnthropicServer(t); return s, s.URL },
			nil, true, true, sentTopLevel},
		{"ollama", "llama3.2", func(t *testing.T) (fakeServer, string) { s := lmtest.NewOllamaServer(t); return s, s.URL },
			lm.Prices{"ollama:llama3.2": {Input: 1, Output: 3}}, false, false, sentInOptions},
	}
	for _, tc := range providers {
		t.Run(tc.provider, func(t *testing.T) {
			srv, url := tc.start(t)
			provider, model := tc.provider, tc.model
			p, err := lm.OpenProvider(lm.ProviderConfig{ModelSpec: lm.ModelSpec{Provider: provider, Model: model}, BaseURL: url, APIKey: "sk-test",
				Prices: lm.DefaultPrices().With(tc.prices), Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if p.Name() != provider+":"+model {
				t.Fatalf("name %q", p.Name())
			}
			cached := 0
			if tc.cached {
				cached = 2
			}
			price, _ := lm.DefaultPrices().With(tc.prices).Lookup(p.Name())
			wantCost := price.Cost(lm.Usage{PromptTokens: 10, CompletionTokens: 7, CachedTokens: cached})
			if wantCost == 0 {
				t.Fatalf("no price for %s: the cost would not be checked", p.Name())
			}

			t.Run("json", func(t *testing.T) {
				srv.Push(lmtest.Reply{Text: "Hello there", PromptTokens: 10, CompletionTokens: 7, CachedTokens: 2})
				req := userReq("hi")
				req.Temperature, req.MaxTokens, req.Stop = 0.5, 64, []string{"END"}
				resp, err := p.Generate(t.Context(), req)
				if err != nil {
					t.Fatal(err)
				}
				want := lm.Usage{PromptTokens: 10, CompletionTokens: 7, CachedTokens: cached, Calls: 1, CostUSD: resp.Usage.CostUSD}
				if resp.Text != "Hello there" || resp.Usage != want || resp.Model != p.Name() {
					t.Fatalf("resp = %+v", resp)
				}
				if math.Abs(resp.Usage.CostUSD-wantCost) > 1e-12 {
					t.Fatalf("cost %v, want %v", resp.Usage.CostUSD, wantCost)
				}
				reqs := srv.Requests()
				if body := reqs[len(reqs)-1].Body; !tc.sent(body, model) {
					t.Fatalf("request body %v", body)
				}
			})
			t.Run("stream", func(t *testing.T) {
				srv.Push(lmtest.Reply{Text: "one two three four", ChunkSize: 4, PromptTokens: 10, CompletionTokens: 7, CachedTokens: 2})
				req := userReq("count")
				var chunks []string
				req.Stream = func(_ context.Context, c []byte) error {
					chunks = append(chunks, string(c))
					return nil
				}
				resp, err := p.Generate(t.Context(), req)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(chunks, "|") != "one |two |thre|e fo|ur" || resp.Text != "one two three four" {
					t.Fatalf("chunks %q text %q", chunks, resp.Text)
				}
				if resp.Usage.PromptTokens != 10 || resp.Usage.CompletionTokens != 7 || resp.Usage.CachedTokens != cached {
					t.Fatalf("streamed usage = %+v", resp.Usage)
				}
			})
			t.Run("tool calls", func(t *testing.T) {
				srv.Push(lmtest.Reply{Text: "no tools here", ToolCalls: []llms.ToolCall{weatherTool}})
				req := userReq("weather in Paris?")
				req.Tools = []llms.Tool{{Type: "function", Function: &llms.FunctionDefinition{Name: "weather", Parameters: map[string]any{"type": "object"}}}}
				resp, err := p.Generate(t.Context(), req)
				if err != nil {
					t.Fatal(err)
				}
				if !tc.tools {
					// The client drops the tools: the model answers in text,
					// which is what ReAct's marker protocol expects then.
					reqs := srv.Requests()
					if _, sent := reqs[len(reqs)-1].Body["tools"]; sent || resp.Text != "no tools here" || len(resp.ToolCalls) != 0 {
						t.Fatalf("tools sent %v, resp = %+v", sent, resp)
					}
					return
				}
				if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].ID != "call_1" || resp.ToolCalls[0].FunctionCall.Name != "weather" ||
					resp.ToolCalls[0].FunctionCall.Arguments != `{"city":"Paris"}` {
					t.Fatalf("tool calls = %+v", resp.ToolCalls)
				}
			})
			t.Run("offline fallback of the server", func(t *testing.T) {
				resp, err := p.Generate(t.Context(), userReq("anything"))
				if err != nil || !strings.Contains(resp.Text, "offline model") {
					t.Fatalf("%v %+v", err, resp)
				}
			})
			t.Run("errors", func(t *testing.T) {
				date := time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC)
				clocked := openProvider(t, provider, model, url, lm.WithClock(func() time.Time { return date.Add(-30 * time.Second) }))
				tests := []struct {
					name       string
					reply      lmtest.Reply
					kind       error
					status     int
					retryAfter time.Duration
					p          *lm.Provider
				}{
					{"429 seconds", lmtest.Reply{Status: 429, RetryAfter: "7"}, lm.ErrRateLimited, 429, 7 * time.Second, p},
					{"429 date", lmtest.Reply{Status: 429, RetryAfter: date.Format(http.TimeFormat)}, lm.ErrRateLimited, 429, 30 * time.Second, clocked},
					{"500", lmtest.Reply{Status: 500}, lm.ErrUnavailable, 500, 0, p},
					{"503", lmtest.Reply{Status: 503, RetryAfter: "2"}, lm.ErrUnavailable, 503, 2 * time.Second, p},
					{"401", lmtest.Reply{Status: 401}, lm.ErrAuth, 401, 0, p},
					{"400", lmtest.Reply{Status: 400, ErrorMessage: "unknown parameter"}, lm.ErrBadRequest, 400, 0, p},
					// A distinct class, so ReAct can truncate its trajectory as
					// DSPy does on ContextWindowExceededError (dspy/predict/react.py).
					{"400 context window", lmtest.Reply{Status: 400, ErrorMessage: "This model's maximum context length is 8192 tokens"}, lm.ErrContextWindow, 400, 0, p},
				}
				for _, tt := range tests {
					srv.Push(tt.reply)
					_, err := tt.p.Generate(t.Context(), userReq("x"))
					var pe *lm.ProviderError
					if !errors.Is(err, tt.kind) || !errors.As(err, &pe) || pe.Status != tt.status || pe.RetryAfter != tt.retryAfter {
						t.Errorf("%s: got %v (%+v)", tt.name, err, pe)
					}
					if tt.reply.ErrorMessage != "" && (err == nil || !strings.Contains(err.Error(), tt.reply.ErrorMessage)) {
						t.Errorf("%s: error %v lacks the server's message", tt.name, err)
					}
					if errors.Is(tt.kind, lm.ErrBadRequest) && !errors.Is(err, lm.ErrBadRequest) {
						t.Errorf("%s: %v is not a bad request", tt.name, err)
					}
					if got := lm.Retryable(err); got != (tt.kind == lm.ErrRateLimited || tt.kind == lm.ErrUnavailable) {
						t.Errorf("%s: Retryable = %v", tt.name, got)
					}
				}
			})
			t.Run("slow reply times out", func(t *testing.T) {
				srv.Push(lmtest.Reply{Text: "late", Delay: 5 * time.Second})
				fast, err := lm.OpenProvider(lm.ProviderConfig{ModelSpec: lm.ModelSpec{Provider: provider, Model: model}, BaseURL: url, APIKey: "k", Timeout: 50 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := fast.Generate(t.Context(), userReq("x")); !errors.Is(err, lm.ErrTimeout) || !lm.Retryable(err) {
					t.Fatalf("got %v", err)
				}
			})
		})
	}
}

func TestProviderCancelledCaller(t *testing.T) {
	srv := lmtest.NewOpenAIServer(t, lmtest.Reply{Text: "late", Delay: 5 * time.Second})
	p := openProvider(t, "openai", "gpt-4o", srv.URL)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.Generate(ctx, userReq("x"))
	if !errors.Is(err, context.Canceled) || lm.Retryable(err) {
		t.Fatalf("got %v", err)
	}
}

func TestClassifyWithoutStatus(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{errors.New("API returned unexpected status code: 429: Rate limit reached"), lm.ErrRateLimited},
		{errors.New("service unavailable"), lm.ErrUnavailable},
		{errors.New("invalid api key"), lm.ErrAuth},
		{errors.New("maximum context length exceeded"), lm.ErrContextWindow},
		{errors.New("prompt is too long: 210000 tokens > 200000 maximum"), lm.ErrContextWindow},
		{errors.New("invalid request: unknown field"), lm.ErrBadRequest},
		{context.DeadlineExceeded, lm.ErrTimeout},
		{errors.New("something odd"), lm.ErrProvider},
	}
	for _, tt := range tests {
		m := lm.NewProvider("openai", "x", failing{tt.err})
		_, err := m.Generate(t.Context(), userReq("q"))
		if !errors.Is(err, tt.want) || !errors.Is(err, tt.err) {
			t.Errorf("%v: got %v, want kind %v", tt.err, err, tt.want)
		}
	}
}

type failing struct{ err error }

func (f failing) GenerateContent(context.Context, []llms.MessageContent, ...llms.CallOption) (*llms.ContentResponse, error) {
	return nil, f.err
}
func (f failing) Call(context.Context, string, ...llms.CallOption) (string, error) { return "", f.err }

// TestProviderInjectedClock checks that an injected clock, not the
// system's, times a call: it is read once as the call starts and once as it
// ends.
func TestProviderInjectedClock(t *testing.T) {
	start, reads := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 0
	clock := func() time.Time {
		reads++
		return start.Add(time.Duration(reads-1) * 3 * time.Second)
	}
	p := lm.NewProvider("openai", "x", answering("hi"), lm.WithProviderClock(clock))
	resp, err := p.Generate(t.Context(), userReq("q"))
	if err != nil || resp.Text != "hi" || resp.Latency != 3*time.Second || reads != 2 {
		t.Fatalf("resp %+v, err %v, clock read %d times", resp, err, reads)
	}
	if resp, err := lm.NewProvider("openai", "x", answering("hi")).Generate(t.Context(), userReq("q")); err != nil || resp.Latency <= 0 || resp.Latency > time.Minute {
		t.Fatalf("system clock: latency %v, err %v", resp.Latency, err)
	}
}

type answering string

func (a answering) GenerateContent(context.Context, []llms.MessageContent, ...llms.CallOption) (*llms.ContentResponse, error) {
	return &llms.ContentResponse{Choices: []*llms.ContentChoice{{Content: string(a)}}}, nil
}
func (a answering) Call(context.Context, string, ...llms.CallOption) (string, error) {
	return string(a), nil
}

func TestNormalizeUsage(t *testing.T) {
	tests := []struct {
		name string
		info map[string]any
		want lm.Usage
	}{
		{"openai", map[string]any{"PromptTokens": 10, "CompletionTokens": 5, "PromptCachedTokens": 4}, lm.Usage{PromptTokens: 10, CompletionTokens: 5, CachedTokens: 4, Calls: 1}},
		{"ollama", map[string]any{"PromptTokens": 3, "CompletionTokens": 2, "CachedTokens": 1}, lm.Usage{PromptTokens: 3, CompletionTokens: 2, CachedTokens: 1, Calls: 1}},
		{"anthropic", map[string]any{"InputTokens": 6, "OutputTokens": 2, "CacheReadInputTokens": 4, "CacheCreationInputTokens": 1}, lm.Usage{PromptTokens: 11, CompletionTokens: 2, CachedTokens: 4, Calls: 1}},
		{"floats", map[string]any{"PromptTokens": 3.0, "CompletionTokens": float32(2)}, lm.Usage{PromptTokens: 3, CompletionTokens: 2, Calls: 1}},
		{"none", nil, lm.Usage{Calls: 1}},
	}
	for _, tt := range tests {
		if got := lm.NormalizeUsage(tt.info); got != tt.want {
			t.Errorf("%s: got %+v want %+v", tt.name, got, tt.want)
		}
	}
}
