package lm

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tmc/langchaingo/llms"
)

// Provider adapts a langchaingo llms.Model to LM: it maps a Request to call
// options, joins the reply's choices, normalises usage and prices it, and
// classifies errors with this package's sentinels. Status codes and
// Retry-After come from the recording HTTP client that OpenProvider installs;
// a model built elsewhere is classified from its error text alone.
type Provider struct {
	provider string
	model    string
	llm      llms.Model
	prices   Prices
	now      func() time.Time
	// since is time.Since unless a clock is injected: it reads only the
	// monotonic clock, where now().Sub reads the wall clock as well.
	since func(time.Time) time.Duration
	// name and price are resolved once: Generate is on every model call's path.
	name   string
	price  Price
	record bool
}

// ProviderOption configures a Provider.
type ProviderOption func(*Provider)

// WithPrices sets the price table used for Usage.CostUSD (default
// DefaultPrices()).
func WithPrices(p Prices) ProviderOption { return func(pr *Provider) { pr.prices = p } }

// WithProviderClock sets the clock used for latency and Retry-After dates.
func WithProviderClock(now func() time.Time) ProviderOption {
	return func(pr *Provider) {
		pr.now = now
		pr.since = func(t time.Time) time.Duration { return now().Sub(t) }
	}
}

// withHTTPRecording makes Generate record each call's HTTP status and
// Retry-After, for models whose HTTP client is the recording one.
func withHTTPRecording() ProviderOption { return func(pr *Provider) { pr.record = true } }

// NewProvider wraps llm, which answers as model of provider.
func NewProvider(provider, model string, llm llms.Model, opts ...ProviderOption) *Provider {
	p := &Provider{provider: provider, model: model, llm: llm, prices: DefaultPrices(), now: time.Now, since: time.Since}
	for _, o := range opts {
		o(p)
	}
	p.name = provider + ":" + model
	p.price, _ = p.prices.Lookup(p.name)
	return p
}

var _ LM = (*Provider)(nil)

// Name returns "provider:model".
func (p *Provider) Name() string { return p.name }

// LLM returns the wrapped langchaingo model.
func (p *Provider) LLM() llms.Model { return p.llm }

// Generate calls the model once.
func (p *Provider) Generate(ctx context.Context, req *Request) (*Response, error) {
	start := p.now()
	callCtx, rec := ctx, (*httpRecord)(nil)
	if p.record {
		callCtx, rec = withRecorder(ctx)
	}
	resp, err := p.llm.GenerateContent(callCtx, req.Messages, callOptions(req)...)
	if err != nil {
		return nil, p.classify(ctx, rec, err)
	}
	if len(resp.Choices) == 0 {
		return nil, &ProviderError{Model: p.name, Kind: ErrProvider, Err: errors.New("reply has no choices")}
	}
	out := &Response{Model: p.name}
	if len(resp.Choices) == 1 {
		c := resp.Choices[0]
		out.Text, out.ToolCalls, out.StopReason = c.Content, c.ToolCalls, c.StopReason
	} else {
		var text strings.Builder
		for _, c := range resp.Choices {
			text.WriteString(c.Content)
			out.ToolCalls = append(out.ToolCalls, c.ToolCalls...)
			if out.StopReason == "" {
				out.StopReason = c.StopReason
			}
		}
		out.Text = text.String()
	}
	out.Usage = NormalizeUsage(resp.Choices[0].GenerationInfo)
	out.Usage.CostUSD = p.price.Cost(out.Usage)
	out.Latency = p.since(start)
	return out, nil
}

func callOptions(req *Request) []llms.CallOption {
	var opts []llms.CallOption
	if req.Temperature != 0 {
		opts = append(opts, llms.WithTemperature(req.Temperature))
	}
	if req.MaxTokens > 0 {
		opts = append(opts, llms.WithMaxTokens(req.MaxTokens))
	}
	if len(req.Stop) > 0 {
		opts = append(opts, llms.WithStopWords(req.Stop))
	}
	if req.Seed != nil {
		opts = append(opts, llms.WithSeed(*req.Seed))
	}
	if req.JSONMode {
		opts = append(opts, llms.WithJSONMode())
	}
	if len(req.Tools) > 0 {
		opts = append(opts, llms.WithTools(req.Tools))
	}
	if req.Stream != nil {
		stream := req.Stream
		// Some clients emit empty chunks (role-only deltas); callers want text.
		opts = append(opts, llms.WithStreamingFunc(func(ctx context.Context, chunk []byte) error {
			if len(chunk) == 0 {
				return nil
			}
			return stream(ctx, chunk)
		}))
	}
	return opts
}

func (p *Provider) classify(ctx context.Context, rec *httpRecord, err error) error {
	pe := &ProviderError{Model: p.name, Err: err}
	var status int
	var retryAfter string
	if rec != nil {
		status, retryAfter = rec.get()
	}
	if kind, failed := kindOfStatus(status); failed {
		if kind == ErrBadRequest && isContextWindow(err) {
			kind = ErrContextWindow
		}
		pe.Kind, pe.Status = kind, status
		pe.RetryAfter = parseRetryAfter(retryAfter, p.now())
		return pe
	}
	switch ctxErr := ctx.Err(); {
	case errors.Is(ctxErr, context.DeadlineExceeded):
		pe.Kind = ErrTimeout
	case ctxErr != nil:
		pe.Kind = context.Canceled
	default:
		pe.Kind = kindOfError(p.provider, err)
	}
	return pe
}

// NormalizeUsage reads token counts from a langchaingo GenerationInfo,
// whichever provider's keys it uses: PromptTokens / CompletionTokens /
// PromptCachedTokens (openai), PromptTokens / CompletionTokens /
// CachedTokens (ollama), InputTokens / OutputTokens / CacheReadInputTokens /
// CacheCreationInputTokens (anthropic). PromptTokens always includes cached
// tokens, as OpenAI counts them; Anthropic reports them apart, so they are
// added. Calls is 1.
func NormalizeUsage(info map[string]any) Usage {
	u := Usage{Calls: 1}
	if _, ok := info["InputTokens"]; ok {
		read := intOf(info["CacheReadInputTokens"])
		u.PromptTokens = intOf(info["InputTokens"]) + read + intOf(info["CacheCreationInputTokens"])
		u.CompletionTokens = intOf(info["OutputTokens"])
		u.CachedTokens = read
		return u
	}
	u.PromptTokens = intOf(info["PromptTokens"])
	u.CompletionTokens = intOf(info["CompletionTokens"])
	u.CachedTokens = max(intOf(info["PromptCachedTokens"]), intOf(info["CachedTokens"]))
	return u
}

func intOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int32:
		return int(n)
	case int64:
		return int(n)
	case float64:
		return int(n)
	case float32:
		return int(n)
	}
	return 0
}
