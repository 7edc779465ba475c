package lmtest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
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
	s := &OpenAIServer{}
	s.fakeServer = newFakeServer(tb, func(f *fakeServer) http.Handler {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/chat/completions", f.openaiChat)
		return mux
	}, replies)
	s.URL = s.srv.URL + "/v1"
	return s
}

func (f *fakeServer) openaiChat(w http.ResponseWriter, r *http.Request) {
	body, reply, queued, ok := f.record(w, r)
	if !ok {
		return
	}
	msgs := messagesOf("", body["messages"])
	if !queued {
		var err error
		if reply, err = f.answerOffline(r, msgs, body); err != nil {
			writeJSON(w, http.StatusInternalServerError, openaiError(err.Error(), "server_error"))
			return
		}
	}
	if !wait(r, reply.Delay) {
		return
	}
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		msg := reply.ErrorMessage
		if msg == "" {
			msg = http.StatusText(reply.Status)
		}
		writeJSON(w, reply.Status, openaiError(msg, "api_error"))
		return
	}
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

func openaiError(msg, typ string) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": typ}}
}
