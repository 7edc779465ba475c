package lmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tmc/langchaingo/llms"
)

// AnthropicServer is an httptest server speaking the Anthropic messages API
// (POST {URL}/messages), JSON and SSE streaming, text and tool_use blocks,
// errors with Retry-After, slow replies. Like OpenAIServer it answers queued
// Replies, then falls back to the offline model.
type AnthropicServer struct {
	// URL is the base URL to configure (it ends in /v1).
	URL string
	*fakeServer
}

// NewAnthropicServer starts a fake Anthropic server on 127.0.0.1. With a
// non-nil tb it stops at cleanup; otherwise call Close.
func NewAnthropicServer(tb testing.TB, replies ...Reply) *AnthropicServer {
	if tb != nil {
		tb.Helper()
	}
	f := startFake(tb, api{
		pattern: "POST /v1/messages",
		messages: func(body map[string]any) []llms.MessageContent {
			system, _ := body["system"].(string)
			return messagesOf(system, body["messages"])
		},
		writeError: anthropicError,
		writeReply: anthropicReply,
	}, replies)
	return &AnthropicServer{URL: f.srv.URL + "/v1", fakeServer: f}
}

func anthropicReply(w http.ResponseWriter, body map[string]any, _ []llms.MessageContent, reply Reply) {
	system, _ := body["system"].(string)
	prompt, _ := json.Marshal(body["messages"])
	pt, ct, cached := reply.usage(system + string(prompt))
	model, _ := body["model"].(string)
	stop := "end_turn"
	var blocks []map[string]any
	if reply.Text != "" {
		blocks = append(blocks, map[string]any{"type": "text", "text": reply.Text})
	}
	for _, tc := range reply.ToolCalls {
		var input map[string]any
		if err := json.Unmarshal([]byte(tc.FunctionCall.Arguments), &input); err != nil {
			input = map[string]any{}
		}
		blocks = append(blocks, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.FunctionCall.Name, "input": input})
		stop = "tool_use"
	}
	id := fmt.Sprintf("msg_%d", time.Now().UnixNano())
	// Anthropic counts cache reads apart from input tokens.
	usage := map[string]any{"input_tokens": pt - cached, "output_tokens": ct, "cache_read_input_tokens": cached}
	if stream, _ := body["stream"].(bool); !stream {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": model,
			"content": blocks, "stop_reason": stop, "usage": usage,
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	sse(w, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"usage": map[string]any{"input_tokens": pt - cached, "output_tokens": 0, "cache_read_input_tokens": cached},
	}})
	index := 0
	if reply.Text != "" {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": index, "content_block": map[string]any{"type": "text", "text": ""}})
		for _, c := range reply.chunks() {
			sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": index, "delta": map[string]any{"type": "text_delta", "text": c}})
		}
		sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	}
	for _, tc := range reply.ToolCalls {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": index, "content_block": map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.FunctionCall.Name, "input": map[string]any{}}})
		sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": index, "delta": map[string]any{"type": "input_json_delta", "partial_json": tc.FunctionCall.Arguments}})
		sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	}
	sse(w, "message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop}, "usage": map[string]any{"output_tokens": ct}})
	sse(w, "message_stop", map[string]any{"type": "message_stop"})
}

// anthropicError writes an error body in Anthropic's shape, with the
// error type Anthropic gives the status.
func anthropicError(w http.ResponseWriter, status int, msg string) {
	typ := "api_error"
	switch status {
	case http.StatusBadRequest:
		typ = "invalid_request_error"
	case http.StatusUnauthorized:
		typ = "authentication_error"
	case http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case 529:
		typ = "overloaded_error"
	}
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}
