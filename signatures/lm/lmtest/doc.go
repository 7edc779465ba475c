// Package lmtest holds test doubles for package lm: a Scripted model that
// answers from queued outputs, and httptest servers that speak the OpenAI
// chat-completions and Anthropic messages APIs so the real langchaingo
// clients can be exercised without a network.
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
package lmtest
