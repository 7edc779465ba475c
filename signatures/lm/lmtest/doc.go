// Package lmtest holds test doubles for package lm: a Scripted model that
// answers from queued outputs, and httptest servers that speak the OpenAI
// chat-completions, Anthropic messages and Ollama chat APIs so the real
// langchaingo clients can be exercised without a network.
//
// # Scripted model
//
// A Scripted model returns its queued outputs in order, records every
// request, streams text in small chunks to Request.Stream and reports usage
// (estimated when an output gives none):
//
//	m := lmtest.Texts("[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]")
//	resp, err := m.Generate(ctx, &lm.Request{Messages: msgs})
//	// resp.Text is the queued text; m.Requests()[0].Messages == msgs
//
// Errors are queued like answers (Output{Err: lm.ErrRateLimited}), and
// WithRespond answers from the request once the queue runs dry.
//
// # Fake provider servers
//
// NewOpenAIServer, NewAnthropicServer and NewOllamaServer start httptest
// servers on 127.0.0.1 that the real langchaingo clients talk to. They
// answer queued Replies (text, tool calls, an HTTP error with Retry-After, a
// delay), then fall back to the offline model, so a whole program can run
// against them:
//
//	srv := lmtest.NewOpenAIServer(t, lmtest.Reply{Status: 429, RetryAfter: "1"})
//	m, err := lm.New(lm.Config{Provider: "openai", BaseURL: srv.URL})
//	// first attempt gets 429, the retry gets an offline-model answer
//
// To point the kowai binary at one (an end-to-end test), start it with a
// nil testing.TB or the test's t and set KOWAI_LLM_PROVIDER=openai,
// KOWAI_LLM_BASE_URL=srv.URL; no API key is needed. srv.Requests() shows
// what the binary sent.
package lmtest
