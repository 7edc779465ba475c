package lmtest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/tmc/langchaingo/llms"
)

// OllamaServer is an httptest server speaking Ollama's chat API (POST
// {URL}/api/chat) as langchaingo's ollama client uses it. The client calls
// that endpoint and nothing else first (it pulls the model through
// /api/pull only when asked to, which kowai never does). Like Ollama, the
// server streams unless the request says "stream": false: the client leaves
// stream out of a call without a streaming function, so it reads such a
// reply as a stream too and joins the chunks. The reply is newline-delimited
// JSON chunks of the message, then a final chunk with done, done_reason and
// the token counts prompt_eval_count and eval_count; errors are an HTTP
// status with {"error": "..."} and Retry-After. Like the other servers it
// answers queued Replies, then falls back to the offline model.
//
// Ollama reports no cached tokens, and langchaingo's client offers no tools,
// so Reply.CachedTokens and Reply.ToolCalls are not sent.
//
// Point kowai at it with KOWAI_LLM_PROVIDER=ollama, KOWAI_LLM_BASE_URL=URL
// and any model name.
type OllamaServer struct {
	// URL is the server URL to configure (no path: the client adds /api).
	URL string
	*fakeServer
}

// NewOllamaServer starts a fake Ollama server on 127.0.0.1 that answers
// replies in order. With a non-nil tb it stops at cleanup; otherwise call
// Close.
func NewOllamaServer(tb testing.TB, replies ...Reply) *OllamaServer {
	if tb != nil {
		tb.Helper()
	}
	f := startFake(tb, api{
		pattern:    "POST /api/chat",
		messages:   func(body map[string]any) []llms.MessageContent { return messagesOf("", body["messages"]) },
		writeError: ollamaError,
		writeReply: ollamaReply,
	}, replies)
	return &OllamaServer{URL: f.srv.URL, fakeServer: f}
}

func ollamaReply(w http.ResponseWriter, body map[string]any, msgs []llms.MessageContent, reply Reply) {
	pt, ct, _ := reply.usage(lm.MessagesText(msgs))
	model, _ := body["model"].(string)
	created := time.Now().UTC().Format(time.RFC3339Nano)
	chunk := func(content string) map[string]any {
		return map[string]any{
			"model": model, "created_at": created,
			"message": map[string]any{"role": "assistant", "content": content}, "done": false,
		}
	}
	final := chunk("")
	final["done"], final["done_reason"] = true, "stop"
	final["prompt_eval_count"], final["eval_count"] = pt, ct
	final["total_duration"], final["eval_duration"] = int64(time.Millisecond), int64(time.Millisecond)
	if stream, ok := body["stream"].(bool); ok && !stream {
		final["message"] = map[string]any{"role": "assistant", "content": reply.Text}
		writeJSON(w, http.StatusOK, final)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	for _, c := range reply.chunks() {
		ndjson(w, chunk(c))
	}
	ndjson(w, final)
}

// ndjson writes one line of a newline-delimited JSON stream and flushes it.
// v is a plain map, which always encodes; a failed write means the client
// went away, which the client knows.
func ndjson(w http.ResponseWriter, v any) {
	_ = json.NewEncoder(w).Encode(v)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
}

// ollamaError writes an error as Ollama does: the status and {"error": msg}.
func ollamaError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg})
}
