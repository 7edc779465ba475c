// Package lm is kowai's language model layer: one small interface (LM) in
// front of langchaingo providers, with the reliability, cost and caching
// machinery a program of signatures needs. It imports nothing else from
// kowai.
//
// # Models
//
// An LM takes a Request (messages, sampling parameters, tools, an optional
// stream callback) and returns a Response with the text, tool calls and
// normalised Usage. Provider adapts any langchaingo llms.Model; OpenProvider
// builds one for the providers of KOWAI_LLM_PROVIDER:
//
//   - offline: the built-in deterministic model of package offline (the
//     default; no network, free);
//   - openai: OpenAI or any OpenAI-compatible server (vLLM, llama.cpp,
//     Ollama) through KOWAI_LLM_BASE_URL; a placeholder key is sent when the
//     server needs none, since langchaingo refuses an empty one;
//   - anthropic and ollama.
//
// # Errors
//
// Provider errors are *ProviderError values that match one sentinel
// (ErrRateLimited, ErrUnavailable, ErrTimeout, ErrBadRequest, ErrAuth, ...)
// with errors.Is. langchaingo flattens HTTP failures into strings, so
// OpenProvider installs an HTTP transport that records each call's status
// code and Retry-After header (in a recorder carried by the request
// context); classification uses the status when there is one, and
// langchaingo's llms.NewErrorMapper on the message otherwise.
//
// # Layers
//
// Cross-cutting concerns wrap the same interface: Instrumented (Prometheus
// metrics), Breaker (a circuit per model), Retry (exponential backoff with
// full jitter, honouring Retry-After), Fallback (a chain of models), Cache
// (LRU or Redis, keyed by CacheKey) and Accounting (Meter and Budget). New
// assembles them from a Config in this order, inside out:
//
//	provider -> metrics -> breaker -> retry -> fallback -> cache -> accounting
//
// See New for why. Every decision (retry, circuit change, fallback, cache
// failure) is logged on the injected *slog.Logger and counted in Metrics.
//
// # Usage and cost
//
// Usage counts prompt tokens (cached ones included), completion tokens,
// cached tokens, calls and cache hits; CostUSD comes from a Prices table
// (DefaultPrices, overridable). A cache hit costs nothing: zero tokens,
// CacheHits = 1. Meters sum usage per model; attach one to a run with
// ContextWithMeter, and a per-run Budget with ContextWithBudget.
//
// # Example
//
//	m, err := lm.New(lm.Config{
//		Provider: "openai",
//		BaseURL:  "http://127.0.0.1:8000/v1", // a vLLM server
//		Model:    "qwen2.5-7b-instruct",
//		Fallback: "offline:kowai-offline",
//		BudgetUSD: 5,
//	}, lm.WithLogger(logger), lm.WithMetrics(metrics))
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	resp, err := m.Generate(ctx, &lm.Request{Messages: msgs, Temperature: 0.2})
//	// resp.Text, resp.Usage.CostUSD, resp.CacheHit
package lm
