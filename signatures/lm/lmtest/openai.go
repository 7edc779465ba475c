package lmtest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"
)

// OpenAIServer is an httptest server speaking the OpenAI chat-completions
// API (POST {URL}/chat/completions): JSON replies, SSE streaming with a
// final usage chunk, tool calls, errors with Retry-After, slow replies. It
// answers queued Replies first, then falls back to kowai's offline model,
// so it can stand in for any OpenAI-compatible server.
//
// Point kowai at it with KOWAI_LLM_PROVIDER=openai, KOWAI_LLM_BASE_URL=URL
// and any model name; no API key is needed.
type OpenAIServer struct {
	// URL is the base URL to configure (it ends in /v1).
	URL string
	*fakeServer
}

// NewOpenAIServer starts a fake OpenAI-compatible server on 127.0.0.1 that
// answers replies in order. With a non-nil tb it stops at cleanup;
// otherwise call Close.
func NewOpenAIServer(tb testing.TB, replies ...Reply) *OpenAIServer {
	if tb != nil {
		tb.Helper()
	}
	f := startFake(tb, api{
		pattern:    "POST /v1/chat/completions",
		messages:   func(body map[string]any) []llms.MessageContent { return messagesOf("", body["messages"]) },
		writeError: openaiError,
		writeReply: openaiReply,
	}, replies)
	return &OpenAIServer{URL: f.srv.URL + "/v1", fakeServer: f}
}

func openaiReply(w http.ResponseWriter, body map[string]any, msgs []llms.MessageContent, reply Reply) {
	var prompt strings.Builder
	for _, m := range msgs {
		for _, p := range m.Parts {
			fmt.Fprint(&prompt, p)
		}
	}
	pt, ct, cached := reply.usage(prompt.String())
	usage := map[string]any{
		"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
		"prompt_tokens_details": map[string]any{"cached_tokens": cached},
	}
	model, _ := body["model"].(string)
	finish := "stop"
	var toolCalls []map[string]any
	for i, tc := range reply.ToolCalls {
		toolCalls = append(toolCalls, map[string]any{
			"index": i, "id": tc.ID, "type": "function",
			"function": map[string]any{"name": tc.FunctionCall.Name, "arguments": tc.FunctionCall.Arguments},
		})
		finish = "tool_calls"
	}
	id, created := fmt.Sprintf("chatcmpl-%d", time.Now().UnixNano()), time.Now().Unix()
	if stream, _ := body["stream"].(bool); !stream {
		message := map[string]any{"role": "assistant", "content": reply.Text}
		if len(toolCalls) > 0 {
			message["tool_calls"] = toolCalls
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "message": message, "finish_reason": finish}},
			"usage":   usage,
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		}
	}
	sse(w, "", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for _, c := range reply.chunks() {
		sse(w, "", chunk(map[string]any{"content": c}, nil))
	}
	if len(toolCalls) > 0 {
		sse(w, "", chunk(map[string]any{"tool_calls": toolCalls}, nil))
	}
	sse(w, "", chunk(map[string]any{}, finish))
	sse(w, "", map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": []any{}, "usage": usage})
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// openaiError writes an error body in OpenAI's shape.
func openaiError(w http.ResponseWriter, status int, msg string) {
	typ := "api_error"
	switch {
	case status == http.StatusBadRequest:
		typ = "invalid_request_error"
	case status >= http.StatusInternalServerError:
		typ = "server_error"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ}})
}
