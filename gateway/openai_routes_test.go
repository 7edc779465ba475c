package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// openAIEnv is a key node with a built-in agent "chat" and an agent "mine"
// of the user, who holds a chat key.
type openAIEnv struct {
	*keyNode
	user          user
	key           string
	builtin, mine persistence.Agent
}

func startOpenAI(t *testing.T, cfg restConfig) *openAIEnv {
	t.Helper()
	n := startKeyNode(t, persisttest.SQLite(t), cfg, nil)
	u := n.newUser(t, "oai@example.com")
	agents := persistence.NewAgentStore(n.db)
	builtin, err := agents.Create(t.Context(), persistence.Agent{Name: "chat", Type: "chat", Signature: "message, history -> response"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := agents.Create(t.Context(), persistence.Agent{OwnerID: u.id, Name: "mine", Type: "chat", Signature: "message -> response"})
	if err != nil {
		t.Fatal(err)
	}
	k := n.createKey(t, u.pair.AccessToken, `{"name":"sdk","scopes":["chat"]}`)
	return &openAIEnv{keyNode: n, user: u, key: k.Key, builtin: builtin, mine: mine}
}

// oaiCall posts body to /v1/chat/completions with token and extra headers.
func (e *openAIEnv) oaiCall(t *testing.T, token, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

func TestOpenAIModels(t *testing.T) {
	e := startOpenAI(t, restConfig{})
	for _, token := range []string{e.key, e.user.pair.AccessToken} {
		r := call(t, http.MethodGet, e.url+"/v1/models", token, "")
		var list openAIModelList
		r.json(t, &list)
		if r.status != http.StatusOK || list.Object != "list" || len(list.Data) != 2 {
			t.Fatalf("models: %d %s", r.status, r.body)
		}
		var ids []string
		for _, m := range list.Data {
			if m.Object != "model" || m.Created == 0 {
				t.Fatalf("model %+v", m)
			}
			ids = append(ids, m.ID+"/"+m.OwnedBy)
		}
		slices.Sort(ids)
		if strings.Join(ids, ",") != "chat/kowai,mine/you" {
			t.Fatalf("models %v", ids)
		}
	}
	r := call(t, http.MethodGet, e.url+"/v1/models", "kowai_"+strings.Repeat("B", 43), "")
	checkOpenAIError(t, r.status, r.body, http.StatusUnauthorized, "invalid_api_key", "")
}

func TestOpenAICompletion(t *testing.T) {
	e := startOpenAI(t, restConfig{})
	e.chat.stop = "length"
	body := `{"model":"mine","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"one"},
		{"role":"user","content":[{"type":"text","text":"second "},{"type":"text","text":"question"}]}],
		"temperature":0.5,"max_completion_tokens":64,"stop":["END"],"seed":7,"user":"end-user-1","n":1,"top_p":1,
		"tools":[],"response_format":{"type":"text"},"logprobs":false}`
	res, b := e.oaiCall(t, e.key, body, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("completion: %d %s", res.StatusCode, b)
	}
	var got chatCompletion
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "chatcmpl-") || got.Object != "chat.completion" || got.Model != "mine" || len(got.Choices) != 1 ||
		got.Choices[0].Message.Role != "assistant" || got.Choices[0].Message.Content != "echo: second question" ||
		got.Choices[0].FinishReason != "length" || got.Usage == nil || got.Usage.TotalTokens != 9 || got.Usage.PromptTokens != 7 {
		t.Fatalf("completion %s", b)
	}
	c := e.chat.lastCompletion()
	if c.AgentID != e.mine.ID || c.UserID != e.user.id || c.Content != "second question" || len(c.History) != 2 ||
		c.History[0].GetRole() != "user" || c.History[0].GetContent() != "first" || c.History[1].GetRole() != "assistant" {
		t.Fatalf("backend got %+v", c)
	}
	o := c.Options
	if o.GetTemperature() != 0.5 || o.GetMaxTokens() != 64 || !slices.Equal(o.GetStop(), []string{"END"}) || o.GetSeed() != 7 {
		t.Fatalf("options %v", o)
	}
	if !strings.Contains(e.logs.String(), "end-user-1") {
		t.Fatal("the user parameter is not recorded")
	}
	// Nothing is stored: no conversation was touched.
	if turns := e.chat.recorded(); len(turns) != 0 {
		t.Fatalf("a stateless completion ran conversation turns: %+v", turns)
	}

	// A built-in agent by name, with an access token.
	res, b = e.oaiCall(t, e.user.pair.AccessToken, `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`, nil)
	if res.StatusCode != http.StatusOK || e.chat.lastCompletion().AgentID != e.builtin.ID || e.chat.lastCompletion().Options != nil {
		t.Fatalf("built-in: %d %s", res.StatusCode, b)
	}
	// By ID.
	res, b = e.oaiCall(t, e.key, `{"model":"`+e.mine.ID+`","messages":[{"role":"user","content":"hi"}]}`, nil)
	if res.StatusCode != http.StatusOK || e.chat.lastCompletion().AgentID != e.mine.ID {
		t.Fatalf("by ID: %d %s", res.StatusCode, b)
	}
}

// sseFrames reads the data frames of an SSE body.
func sseFrames(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, data)
		}
	}
	return out
}

func TestOpenAIStream(t *testing.T) {
	e := startOpenAI(t, restConfig{})
	for _, includeUsage := range []bool{false, true} {
		body := `{"model":"chat","stream":true,"messages":[{"role":"user","content":"stream me"}]}`
		if includeUsage {
			body = `{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me"}]}`
		}
		res, b := e.oaiCall(t, e.key, body, nil)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream: %d %v %s", res.StatusCode, res.Header, b)
		}
		frames := sseFrames(t, b)
		if len(frames) < 4 || frames[len(frames)-1] != "[DONE]" {
			t.Fatalf("frames %q", frames)
		}
		var text strings.Builder
		var finish []string
		var usage *completionUsage
		var ids []string
		for i, f := range frames[:len(frames)-1] {
			var c chatCompletionChunk
			if err := json.Unmarshal([]byte(f), &c); err != nil {
				t.Fatalf("frame %q: %v", f, err)
			}
			if c.Object != "chat.completion.chunk" || c.Model != "chat" {
				t.Fatalf("frame %q", f)
			}
			ids = append(ids, c.ID)
			if i == 0 && (len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant") {
				t.Fatalf("first frame %q lacks the role", f)
			}
			for _, ch := range c.Choices {
				if ch.Delta.Content != nil {
					text.WriteString(*ch.Delta.Content)
				}
				if ch.FinishReason != nil {
					finish = append(finish, *ch.FinishReason)
				}
			}
			if c.Usage != nil {
				if len(c.Choices) != 0 || usage != nil {
					t.Fatalf("usage frame %q", f)
				}
				usage = c.Usage
			}
		}
		if text.String() != "echo: stream me" || !slices.Equal(finish, []string{"stop"}) || len(slices.Compact(slices.Clone(ids))) != 1 {
			t.Fatalf("streamed %q finish %v ids %v", text.String(), finish, ids)
		}
		if includeUsage != (usage != nil) || usage != nil && usage.TotalTokens != 9 {
			t.Fatalf("include_usage=%v, usage %+v", includeUsage, usage)
		}
	}
	// While the model thinks, the stream carries keep-alive comments, which
	// clients skip.
	res, b := e.oaiCall(t, e.key, `{"model":"chat","stream":true,"messages":[{"role":"user","content":"slow"}]}`, nil)
	if frames := sseFrames(t, b); res.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("\n: keep-alive\n\n")) ||
		frames[len(frames)-1] != "[DONE]" || !strings.Contains(strings.Join(frames, ""), `"echo: "`) {
		t.Fatalf("slow stream: %d %s", res.StatusCode, b)
	}
	// A failure after the stream started is an error frame, then [DONE].
	res, b = e.oaiCall(t, e.key, `{"model":"chat","stream":true,"messages":[{"role":"user","content":"crash"}]}`, nil)
	frames := sseFrames(t, b)
	if res.StatusCode != http.StatusOK || len(frames) != 3 || !strings.Contains(frames[1], `"error"`) || strings.Contains(frames[1], "secret") || frames[2] != "[DONE]" {
		t.Fatalf("failed stream: %d %q", res.StatusCode, frames)
	}
}

// checkOpenAIError checks an error answer's status and OpenAI shape.
func checkOpenAIError(t *testing.T, status int, body []byte, wantStatus int, code, param string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	gotParam := ""
	if e.Error.Param != nil {
		gotParam = *e.Error.Param
	}
	if status != wantStatus || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == nil || *e.Error.Code != code || gotParam != param {
		t.Fatalf("status %d body %s; want %d code %s param %q", status, body, wantStatus, code, param)
	}
}

func TestOpenAIErrors(t *testing.T) {
	e := startOpenAI(t, restConfig{})
	other := e.newUser(t, "other-oai@example.com")
	msg := `"messages":[{"role":"user","content":"hi"}]`
	for _, tt := range []struct {
		name, token, body string
		status            int
		code, param       string
	}{
		{"no token", "", `{"model":"chat",` + msg + `}`, 401, "invalid_api_key", ""},
		{"bad key", "kowai_" + strings.Repeat("C", 43), `{"model":"chat",` + msg + `}`, 401, "invalid_api_key", ""},
		{"unknown model", e.key, `{"model":"gpt-4o",` + msg + `}`, 404, "model_not_found", "model"},
		{"another user's agent", other.pair.AccessToken, `{"model":"` + e.mine.ID + `",` + msg + `}`, 404, "model_not_found", "model"},
		{"another user's agent by name", other.pair.AccessToken, `{"model":"mine",` + msg + `}`, 404, "model_not_found", "model"},
		{"no model", e.key, `{` + msg + `}`, 400, "invalid_request_error", "model"},
		{"no messages", e.key, `{"model":"chat","messages":[]}`, 400, "invalid_request_error", "messages"},
		{"tools", e.key, `{"model":"chat",` + msg + `,"tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "unsupported_parameter", "tools"},
		{"n", e.key, `{"model":"chat",` + msg + `,"n":2}`, 400, "unsupported_parameter", "n"},
		{"logprobs", e.key, `{"model":"chat",` + msg + `,"logprobs":true}`, 400, "unsupported_parameter", "logprobs"},
		{"json format", e.key, `{"model":"chat",` + msg + `,"response_format":{"type":"json_object"}}`, 400, "unsupported_parameter", "response_format"},
		{"audio", e.key, `{"model":"chat",` + msg + `,"audio":{"voice":"alloy","format":"mp3"}}`, 400, "unsupported_parameter", "audio"},
		{"top_p", e.key, `{"model":"chat",` + msg + `,"top_p":0.5}`, 400, "unsupported_parameter", "top_p"},
		{"unknown parameter", e.key, `{"model":"chat",` + msg + `,"frobnicate":1}`, 400, "invalid_request_error", "frobnicate"},
		{"system message", e.key, `{"model":"chat","messages":[{"role":"system","content":"be terse"},{"role":"user","content":"hi"}]}`, 400, "unsupported_parameter", "messages[0].role"},
		{"image part", e.key, `{"model":"chat","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "unsupported_parameter", "messages[0].content"},
		{"last is assistant", e.key, `{"model":"chat","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, 400, "invalid_request_error", "messages[1].role"},
		{"hot temperature", e.key, `{"model":"chat",` + msg + `,"temperature":3}`, 400, "invalid_request_error", "temperature"},
		{"zero max_tokens", e.key, `{"model":"chat",` + msg + `,"max_tokens":0}`, 400, "invalid_request_error", "max_tokens"},
		{"five stops", e.key, `{"model":"chat",` + msg + `,"stop":["a","b","c","d","e"]}`, 400, "invalid_request_error", "stop"},
		{"stream_options without stream", e.key, `{"model":"chat",` + msg + `,"stream_options":{"include_usage":true}}`, 400, "invalid_request_error", "stream_options"},
		{"bad conversation id", e.key, `{"model":"chat",` + msg + `,"metadata":{"conversation_id":"nope"}}`, 400, "invalid_request_error", "metadata.conversation_id"},
		{"other metadata", e.key, `{"model":"chat",` + msg + `,"metadata":{"team":"x"}}`, 400, "unsupported_parameter", "metadata.team"},
		{"not JSON", e.key, `[1,2]`, 400, "invalid_request_error", ""},
		{"backend refusal", e.key, `{"model":"chat","messages":[{"role":"user","content":"busy"}]}`, 409, "invalid_request_error", ""},
		{"backend crash", e.key, `{"model":"chat","messages":[{"role":"user","content":"crash"}]}`, 500, "server_error", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, b := e.oaiCall(t, tt.token, tt.body, nil)
			checkOpenAIError(t, res.StatusCode, b, tt.status, tt.code, tt.param)
			if strings.Contains(string(b), "secret") {
				t.Fatalf("internal detail leaked: %s", b)
			}
		})
	}
	// A key without the chat scope is refused in OpenAI's shape.
	readKey := e.createKey(t, e.user.pair.AccessToken, `{"name":"reader","scopes":["agents:read"]}`)
	res, b := e.oaiCall(t, readKey.Key, `{"model":"chat",`+msg+`}`, nil)
	checkOpenAIError(t, res.StatusCode, b, http.StatusForbidden, "insufficient_permissions", "")
}

func TestOpenAIRateLimit(t *testing.T) {
	e := startOpenAI(t, restConfig{rateLimit: ratelimit.Limit{Rate: 2, Period: time.Minute}})
	body := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
	// The completion and the native chat route draw from one bucket.
	if r := call(t, http.MethodPost, e.url+"/api/v1/chat/message", e.key, `{"content":"hi"}`); r.status != http.StatusOK {
		t.Fatalf("native turn: %d", r.status)
	}
	if res, b := e.oaiCall(t, e.key, body, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("first completion: %d %s", res.StatusCode, b)
	}
	res, b := e.oaiCall(t, e.key, body, nil)
	checkOpenAIError(t, res.StatusCode, b, http.StatusTooManyRequests, "rate_limit_exceeded", "")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestOpenAIConversation(t *testing.T) {
	e := startOpenAI(t, restConfig{})
	conv := "0190a3b0-0000-7000-8000-000000000001"
	body := `{"model":"mine","messages":[{"role":"user","content":"old"},{"role":"assistant","content":"reply"},{"role":"user","content":"new one"}],"temperature":1.5}`
	res, b := e.oaiCall(t, e.key, body, map[string]string{ConversationHeader: conv, "Idempotency-Key": "retry-1"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("bound completion: %d %s", res.StatusCode, b)
	}
	var got chatCompletion
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	turns := e.chat.recorded()
	if len(turns) != 1 || got.ConversationID != conv {
		t.Fatalf("turns %+v, answer %s", turns, b)
	}
	tn := turns[0]
	if tn.ConversationID != conv || tn.Content != "new one" || tn.AgentID != e.mine.ID || tn.UserID != e.user.id ||
		tn.IdempotencyKey != "retry-1" || tn.Options.GetTemperature() != 1.5 {
		t.Fatalf("turn %+v", tn)
	}
	// metadata.conversation_id does the same; a stateless call takes no
	// Idempotency-Key (there is nothing to replay).
	if res, b := e.oaiCall(t, e.key, `{"model":"mine","messages":[{"role":"user","content":"x"}],"metadata":{"conversation_id":"`+conv+`"}}`, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("metadata binding: %d %s", res.StatusCode, b)
	}
	if turns := e.chat.recorded(); len(turns) != 2 || turns[1].ConversationID != conv {
		t.Fatalf("turns %+v", turns)
	}
	res, b = e.oaiCall(t, e.key, `{"model":"mine","messages":[{"role":"user","content":"x"}]}`, map[string]string{"Idempotency-Key": "k"})
	checkOpenAIError(t, res.StatusCode, b, http.StatusBadRequest, "invalid_request_error", "Idempotency-Key")
}

func TestOpenAIAndKeysDocumented(t *testing.T) {
	n := startKeyNode(t, persisttest.SQLite(t), restConfig{}, nil)
	undocumented, phantom := routeDocDiff(t, n.server)
	if len(undocumented) > 0 || len(phantom) > 0 {
		t.Fatalf("routes without docs: %v; docs without routes: %v", undocumented, phantom)
	}
	paths := n.server.OpenAPI()["paths"].(map[string]map[string]any)
	for _, p := range []string{"/v1/models", "/v1/chat/completions", "/api/v1/auth/api-keys", "/api/v1/auth/api-keys/{id}"} {
		if paths[p] == nil {
			t.Errorf("%s is not documented", p)
		}
	}
}

// TestOpenAICORSPreflight: a browser may send the conversation header.
func TestOpenAICORSPreflight(t *testing.T) {
	ts := start(t, Options{CORSOrigins: []string{"https://app.example"}}, nil)
	req, err := http.NewRequest(http.MethodOptions, ts.url+"/v1/chat/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-kowai-conversation-id")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "x-kowai-conversation-id") {
		t.Fatalf("preflight allows headers %q", got)
	}
}
