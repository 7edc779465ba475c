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
