package lm

import (
	"context"
	"time"

	"github.com/tmc/langchaingo/llms"
)

// LM is a language model as the signature layer sees it: one request in, one
// normalised response out. Implementations wrap a langchaingo llms.Model (the
// providers), or wrap another LM (cache, retry, circuit breaker, fallback,
// metrics, budget). Generate must be safe for concurrent use.
type LM interface {
	// Generate sends req and returns the model's reply with normalised usage.
	// Errors are classified with the sentinels of this package (ErrRateLimited,
	// ErrUnavailable, ErrBudgetExceeded, ...) and wrapped with context.
	Generate(ctx context.Context, req *Request) (*Response, error)
	// Name identifies the model as "provider:model", for metrics, logs and
	// cache keys.
	Name() string
}

// Func adapts a plain function to the LM interface; handy in tests.
type Func struct {
	// ID is returned by Name.
	ID string
	// Fn is called by Generate.
	Fn func(ctx context.Context, req *Request) (*Response, error)
}

// Generate calls f.Fn.
func (f Func) Generate(ctx context.Context, req *Request) (*Response, error) { return f.Fn(ctx, req) }

// Name returns f.ID.
func (f Func) Name() string { return f.ID }

// Request is one model call.
type Request struct {
	// Messages is the conversation sent to the model, system message first.
	Messages []llms.MessageContent
	// Temperature, MaxTokens and Stop map to the langchaingo call options of
	// the same names; zero values leave the provider's default.
	Temperature float64
	MaxTokens   int
	Stop        []string
	// Seed, when set, asks the provider for reproducible sampling where it
	// supports it (llms.WithSeed).
	Seed *int
	// JSONMode asks the provider for a JSON object reply where it supports it.
	JSONMode bool
	// Tools are offered for native tool calling; nil means none.
	Tools []llms.Tool
	// RolloutID makes an otherwise identical request distinct for the cache
	// (several samples of one prompt). It is never sent to the provider.
	RolloutID string
	// NoCache bypasses the response cache for this call (read and write).
	NoCache bool
	// Stream, when set, receives the reply's text chunks as they arrive.
	// Returning an error aborts the call.
	Stream func(ctx context.Context, chunk []byte) error
}

// Response is a model's reply.
type Response struct {
	// Text is the full text of the reply.
	Text string
	// ToolCalls holds the tool calls the model asked for, if any.
	ToolCalls []llms.ToolCall
	// StopReason is the provider's reason for ending the reply.
	StopReason string
	// Model is the "provider:model" name that actually answered (it differs
	// from the requested one after a fallback).
	Model string
	// Usage is the normalised token usage and cost of this call; zero tokens
	// and CacheHits=1 on a cache hit.
	Usage Usage
	// CacheHit reports that the reply came from the cache.
	CacheHit bool
	// Latency is the wall time of the call as seen by the caller.
	Latency time.Duration
}

// Usage is token usage and cost, normalised across providers. Values add up
// with Add, so the same type serves per call, per program run and per model.
type Usage struct {
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	CachedTokens     int     `json:"cached_tokens"`
	Calls            int     `json:"calls"`
	CacheHits        int     `json:"cache_hits"`
	CostUSD          float64 `json:"cost_usd"`
}

// Add returns the sum of u and o.
func (u Usage) Add(o Usage) Usage {
	return Usage{
		PromptTokens:     u.PromptTokens + o.PromptTokens,
		CompletionTokens: u.CompletionTokens + o.CompletionTokens,
		CachedTokens:     u.CachedTokens + o.CachedTokens,
		Calls:            u.Calls + o.Calls,
		CacheHits:        u.CacheHits + o.CacheHits,
		CostUSD:          u.CostUSD + o.CostUSD,
	}
}

// TotalTokens is prompt plus completion tokens.
func (u Usage) TotalTokens() int { return u.PromptTokens + u.CompletionTokens }
