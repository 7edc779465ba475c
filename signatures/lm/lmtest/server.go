package lmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/tmc/langchaingo/llms"
)

// Reply is one queued answer of a fake provider server.
type Reply struct {
	// Status, when not 0 or 200, makes the server fail with that HTTP
	// status and an error body carrying ErrorMessage.
	Status       int
	ErrorMessage string
	// RetryAfter is sent as the Retry-After header (seconds or HTTP date).
	RetryAfter string
	// Delay holds the reply back (a slow server); the wait ends early when
	// the client goes away.
	Delay time.Duration
	// Text is the reply text; streamed in chunks of ChunkSize runes
	// (default 5) when the client asks for a stream.
	Text      string
	ChunkSize int
	// ToolCalls are returned as tool calls (OpenAI) or tool_use blocks
	// (Anthropic); the Ollama server does not send them.
	ToolCalls []llms.ToolCall
	// PromptTokens, CompletionTokens and CachedTokens are reported as the
	// provider reports usage (Ollama has no cached tokens); zero prompt and
	// completion counts are estimated from the texts.
	PromptTokens, CompletionTokens, CachedTokens int
}

// Recorded is one request a fake server received.
type Recorded struct {
	Path   string
	Header http.Header
	// Body is the decoded JSON body.
	Body map[string]any
}

// fakeServer is the queue and request log shared by the fake providers.
// When the queue is empty it answers with the offline model, so a program
// run against it gets well-formed replies for any signature.
type fakeServer struct {
	srv     *httptest.Server
	offline *offline.Model

	mu       sync.Mutex
	queue    []Reply
	requests []Recorded
}

// api is what one fake provider API adds to fakeServer: where requests
// arrive, how they carry the conversation, how errors and replies look.
type api struct {
	// pattern is the http.ServeMux pattern of the endpoint.
	pattern string
	// messages reads the conversation of a request body.
	messages func(body map[string]any) []llms.MessageContent
	// writeError writes an error reply with status and message.
	writeError func(w http.ResponseWriter, status int, msg string)
	// writeReply writes a successful reply to body.
	writeReply func(w http.ResponseWriter, body map[string]any, msgs []llms.MessageContent, reply Reply)
}

// startFake starts a server for a on 127.0.0.1 answering replies first.
// With a non-nil tb it stops at cleanup.
func startFake(tb testing.TB, a api, replies []Reply) *fakeServer {
	f := &fakeServer{offline: offline.New(), queue: append([]Reply(nil), replies...)}
	mux := http.NewServeMux()
	mux.HandleFunc(a.pattern, func(w http.ResponseWriter, r *http.Request) { f.serve(w, r, a) })
	f.srv = httptest.NewServer(mux)
	if tb != nil {
		tb.Cleanup(f.srv.Close)
	}
	return f
}

// Push queues more replies.
func (f *fakeServer) Push(replies ...Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, replies...)
}

// Requests returns the requests received so far.
func (f *fakeServer) Requests() []Recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Recorded(nil), f.requests...)
}

// Close stops the server; servers started with a testing.TB close on their
// own at cleanup.
func (f *fakeServer) Close() { f.srv.Close() }

// serve answers one request of a: the next queued reply, or the offline
// model's answer, after the reply's delay, as an error or a reply of a.
func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request, a api) {
	body, reply, queued, err := f.record(r)
	if err != nil {
		a.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	msgs := a.messages(body)
	if !queued {
		if reply, err = f.answerOffline(r, msgs, body); err != nil {
			a.writeError(w, http.StatusInternalServerError, err.Error())
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
		a.writeError(w, reply.Status, msg)
		return
	}
	a.writeReply(w, body, msgs, reply)
}

// record decodes and logs a request and takes the next reply; queued is
// false when the queue was empty. A body that is not JSON is an error.
func (f *fakeServer) record(r *http.Request) (body map[string]any, reply Reply, queued bool, err error) {
	raw, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		return nil, Reply{}, false, fmt.Errorf("request body: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, Recorded{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	if len(f.queue) == 0 {
		return body, Reply{}, false, nil
	}
	reply = f.queue[0]
	f.queue = f.queue[1:]
	return body, reply, true, nil
}

// answerOffline fills a reply from the offline model.
func (f *fakeServer) answerOffline(r *http.Request, msgs []llms.MessageContent, body map[string]any) (Reply, error) {
	var opts []llms.CallOption
	if tools := toolsOf(body); len(tools) > 0 {
		opts = append(opts, llms.WithTools(tools))
	}
	resp, err := f.offline.GenerateContent(r.Context(), msgs, opts...)
	if err != nil {
		return Reply{}, err
	}
	c := resp.Choices[0]
	return Reply{Text: c.Content, ToolCalls: c.ToolCalls}, nil
}

// wait sleeps for the reply's delay; false means the client gave up.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// usage completes a reply's token counts.
func (rep Reply) usage(prompt string) (int, int, int) {
	p, c := rep.PromptTokens, rep.CompletionTokens
	if p == 0 && c == 0 {
		p, c = lm.EstimateTokens(prompt), lm.EstimateTokens(rep.Text)
	}
	return p, c, rep.CachedTokens
}

// chunks splits the reply text for streaming.
func (rep Reply) chunks() []string {
	size := rep.ChunkSize
	if size <= 0 {
		size = 5
	}
	var out []string
	runes := []rune(rep.Text)
	for i := 0; i < len(runes); i += size {
		out = append(out, string(runes[i:min(i+size, len(runes))]))
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// sse writes one server-sent event and flushes it.
func sse(w http.ResponseWriter, event string, v any) {
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "data: %s\n\n", b)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
}

// textOf reads a message content that is a string or a list of blocks.
func textOf(content any) string {
	switch c := content.(type) {
	case string:
		return c
	case []any:
		var s string
		for _, part := range c {
			if m, ok := part.(map[string]any); ok {
				if t, ok := m["text"].(string); ok {
					s += t
				} else if t, ok := m["content"].(string); ok {
					s += t
				}
			}
		}
		return s
	}
	return ""
}

var roles = map[string]llms.ChatMessageType{
	"system":    llms.ChatMessageTypeSystem,
	"user":      llms.ChatMessageTypeHuman,
	"assistant": llms.ChatMessageTypeAI,
	"tool":      llms.ChatMessageTypeTool,
}

// messagesOf converts chat messages of either API to langchaingo messages
// (text only, tool results kept as tool responses) for the offline model.
func messagesOf(system string, raw any) []llms.MessageContent {
	var out []llms.MessageContent
	if system != "" {
		out = append(out, llms.TextParts(llms.ChatMessageTypeSystem, system))
	}
	list, _ := raw.([]any)
	for _, item := range list {
		m, _ := item.(map[string]any)
		role, _ := m["role"].(string)
		text := textOf(m["content"])
		if role == "tool" || hasToolResult(m["content"]) {
			out = append(out, llms.MessageContent{Role: llms.ChatMessageTypeTool, Parts: []llms.ContentPart{llms.ToolCallResponse{Content: text}}})
			continue
		}
		out = append(out, llms.TextParts(roles[role], text))
	}
	return out
}

func hasToolResult(content any) bool {
	parts, _ := content.([]any)
	for _, p := range parts {
		if m, ok := p.(map[string]any); ok && m["type"] == "tool_result" {
			return true
		}
	}
	return false
}

// toolsOf reads the offered tools of either API.
func toolsOf(body map[string]any) []llms.Tool {
	list, _ := body["tools"].([]any)
	var out []llms.Tool
	for _, item := range list {
		m, _ := item.(map[string]any)
		if fn, ok := m["function"].(map[string]any); ok { // OpenAI
			name, _ := fn["name"].(string)
			out = append(out, llms.Tool{Type: "function", Function: &llms.FunctionDefinition{Name: name, Parameters: fn["parameters"]}})
		} else if name, ok := m["name"].(string); ok { // Anthropic
			out = append(out, llms.Tool{Type: "function", Function: &llms.FunctionDefinition{Name: name, Parameters: m["input_schema"]}})
		}
	}
	return out
}
