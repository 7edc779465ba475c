package lmtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAIServerWithoutQueue checks the server answers any client (here
// plain HTTP) with the offline model once its queue is empty.
func TestOpenAIServerWithoutQueue(t *testing.T) {
	srv := NewOpenAIServer(t)
	body := `{"model":"m","messages":[{"role":"system","content":"sys"},{"role":"user","content":"Respond with the corresponding output fields, starting with the field ` +
		"`[[ ## answer ## ]]`" + ` (must be formatted as a valid Python int), and then ending with the marker for ` + "`[[ ## completed ## ]]`" + `."}]}`
	resp, err := http.Post(srv.URL+"/chat/completions", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	text := out.Choices[0].Message.Content
	if resp.StatusCode != 200 || !strings.HasPrefix(text, "[[ ## answer ## ]]\n") || !strings.HasSuffix(text, "[[ ## completed ## ]]") || out.Usage.PromptTokens == 0 {
		t.Fatalf("status %d reply %q usage %+v", resp.StatusCode, text, out.Usage)
	}
	if reqs := srv.Requests(); len(reqs) != 1 || reqs[0].Body["model"] != "m" {
		t.Fatalf("recorded %+v", reqs)
	}

	bad, err := http.Post(srv.URL+"/chat/completions", "application/json", strings.NewReader("{"))
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed body: status %d", bad.StatusCode)
	}
}

// TestOllamaServerProtocol checks the Ollama server with plain HTTP, as
// Ollama answers: a stream of chunks unless the request says "stream":
// false, the token counts on the final chunk, errors as {"error": ...}.
func TestOllamaServerProtocol(t *testing.T) {
	srv := NewOllamaServer(t, Reply{Text: "hello world", ChunkSize: 6, PromptTokens: 4, CompletionTokens: 2},
		Reply{Text: "whole", PromptTokens: 3, CompletionTokens: 1}, Reply{Status: 429, RetryAfter: "3", ErrorMessage: "busy"})
	post := func(body string) *http.Response {
		t.Helper()
		resp, err := http.Post(srv.URL+"/api/chat", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	type chunk struct {
		Message         struct{ Role, Content string }
		Done            bool
		DoneReason      string `json:"done_reason"`
		PromptEvalCount int    `json:"prompt_eval_count"`
		EvalCount       int    `json:"eval_count"`
	}
	decode := func(resp *http.Response) []chunk {
		t.Helper()
		var out []chunk
		dec := json.NewDecoder(resp.Body)
		for dec.More() {
			var c chunk
			if err := dec.Decode(&c); err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return out
	}
	msgs := `"messages":[{"role":"system","content":"sys"},{"role":"user","content":"hi"}]`

	resp := post(`{"model":"llama3.2",` + msgs + `}`)
	chunks := decode(resp)
	if resp.Header.Get("Content-Type") != "application/x-ndjson" || len(chunks) != 3 ||
		chunks[0].Message.Content != "hello " || chunks[1].Message.Content != "world" || chunks[0].Done {
		t.Fatalf("stream left out: %s %+v", resp.Header.Get("Content-Type"), chunks)
	}
	if last := chunks[2]; !last.Done || last.DoneReason != "stop" || last.PromptEvalCount != 4 || last.EvalCount != 2 || last.Message.Content != "" {
		t.Fatalf("final chunk %+v", last)
	}

	chunks = decode(post(`{"model":"llama3.2","stream":false,` + msgs + `}`))
	if len(chunks) != 1 || !chunks[0].Done || chunks[0].Message.Content != "whole" || chunks[0].Message.Role != "assistant" || chunks[0].EvalCount != 1 {
		t.Fatalf("stream false: %+v", chunks)
	}

	resp = post(`{"model":"llama3.2",` + msgs + `}`)
	var e struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || e.Error != "busy" {
		t.Fatalf("error reply: status %d, Retry-After %q, body %+v (%v)", resp.StatusCode, resp.Header.Get("Retry-After"), e, err)
	}

	// With the queue empty the offline model answers, seeing the messages.
	chunks = decode(post(`{"model":"llama3.2",` + msgs + `}`))
	var text strings.Builder
	for _, c := range chunks {
		text.WriteString(c.Message.Content)
	}
	if !strings.Contains(text.String(), "offline model") || chunks[len(chunks)-1].PromptEvalCount == 0 {
		t.Fatalf("offline answer %q", text.String())
	}

	bad := post("{")
	e.Error = ""
	if err := json.NewDecoder(bad.Body).Decode(&e); err != nil || bad.StatusCode != http.StatusBadRequest || e.Error == "" {
		t.Fatalf("malformed body: status %d, body %+v (%v)", bad.StatusCode, e, err)
	}
	if reqs := srv.Requests(); len(reqs) != 4 || reqs[1].Body["stream"] != false {
		t.Fatalf("recorded %d requests: %+v", len(reqs), reqs)
	}
}
