package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
)

// servedJSON downloads a document of the server over HTTP.
func servedJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	res, body := get(t, url, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return doc
}

// pointer reads a member of a decoded JSON document by path.
func pointer(doc any, path ...string) any {
	for _, p := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[p]
	}
	return doc
}

// frameSchema is the payload schema the AsyncAPI document gives frame type name.
func frameSchema(doc map[string]any, name string) map[string]any {
	ref, _ := pointer(doc, "components", "messages", name, "payload", "$ref").(string)
	s, _ := pointer(doc, "components", "schemas", strings.TrimPrefix(ref, "#/components/schemas/")).(map[string]any)
	return s
}

// frameProblems checks a frame as sent on the wire against the document:
// its type is documented, it has every required member and no other member
// than the documented ones, each of the documented JSON type.
func frameProblems(doc map[string]any, raw []byte) []string {
	var f map[string]any
	if err := json.Unmarshal(raw, &f); err != nil {
		return []string{fmt.Sprintf("not a JSON object: %s", raw)}
	}
	typ, _ := f["type"].(string)
	s := frameSchema(doc, typ)
	if s == nil {
		return []string{fmt.Sprintf("frame type %q is not documented: %s", typ, raw)}
	}
	props, _ := s["properties"].(map[string]any)
	var problems []string
	for _, r := range s["required"].([]any) {
		if _, ok := f[r.(string)]; !ok {
			problems = append(problems, fmt.Sprintf("%s frame lacks required %s: %s", typ, r, raw))
		}
	}
	for k, v := range f {
		p, ok := props[k].(map[string]any)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s frame has undocumented member %s: %s", typ, k, raw))
			continue
		}
		want, _ := p["type"].(string)
		var got string
		switch x := v.(type) {
		case string:
			got = "string"
		case float64:
			got = "number"
			if x == float64(int64(x)) && want == "integer" {
				got = "integer"
			}
		case bool:
			got = "boolean"
		case map[string]any:
			got = "object"
			if _, isRef := p["$ref"]; isRef {
				want = "object"
			}
		}
		if want != "" && got != want {
			problems = append(problems, fmt.Sprintf("%s frame member %s is %s, documented as %s", typ, k, got, want))
		}
	}
	return problems
}

// fillFrame builds a client frame of type name with every member the
// document gives it, each with a value the server accepts.
func fillFrame(t *testing.T, doc map[string]any, name, token string) map[string]any {
	t.Helper()
	s := frameSchema(doc, name)
	if s == nil {
		t.Fatalf("frame %s is not documented", name)
	}
	f := map[string]any{}
	for k, p := range s["properties"].(map[string]any) {
		p := p.(map[string]any)
		switch {
		case p["const"] != nil:
			f[k] = p["const"]
		case k == "token":
			f[k] = token
		case k == "content":
			f[k] = "every documented member"
		case p["type"] == "string":
			// IDs and keys must be UUIDs or sane tokens; a UUID is both.
			f[k] = "0190a5c2-7b3e-7c1d-9a2b-3c4d5e6f7a8b"
		case p["type"] == "integer" || p["type"] == "number":
			f[k] = 0
		default:
			t.Fatalf("frame %s member %s: no sample value for %v", name, k, p)
		}
	}
	return f
}

// TestAsyncAPIMatchesTheWire holds the served AsyncAPI document to what the
// WebSocket really does: a client frame with every member the document
// gives it is accepted (decoding is strict, so an invented member would be
// refused), and every frame the server sends back, tokens, done and errors,
// has the members and types the document gives that frame, and no others.
func TestAsyncAPIMatchesTheWire(t *testing.T) {
	ts := startAPI(t, &fakeChat{})
	doc := servedJSON(t, ts.url+"/asyncapi.json")
	c, _, err := wsDial(t, ts, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"auth", "message"} {
		if err := c.WriteJSON(fillFrame(t, doc, name, "good-u1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WriteMessage(fws.TextMessage, []byte(`{"type":"message","content":""}`)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seen["done"] == 0 || seen["error"] == 0 {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, raw, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read after %v: %v", seen, err)
		}
		for _, p := range frameProblems(doc, raw) {
			t.Error(p)
		}
		var f wsServerFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		if f.Type == "error" && f.Detail != "content: must not be empty" {
			t.Fatalf("the full message frame was refused: %s", raw)
		}
		seen[f.Type]++
	}
	if seen["token"] == 0 {
		t.Errorf("no token frame streamed: %v", seen)
	}
	// The check itself must notice an undocumented member and a missing one.
	if p := frameProblems(doc, []byte(`{"type":"done","conversation_id":"c","message_id":"m","response":"r","usage":{},"extra":1}`)); len(p) != 1 {
		t.Errorf("undocumented member: %v", p)
	}
	if p := frameProblems(doc, []byte(`{"type":"error","status":400}`)); len(p) != 1 {
		t.Errorf("missing title: %v", p)
	}
}

// TestAsyncAPIDocument checks the document's shape: one message and one
// operation per frame type, in the right direction, each with a written
// summary, and the server named after the host the client reached.
func TestAsyncAPIDocument(t *testing.T) {
	ts := startAPI(t, &fakeChat{})
	req, err := http.NewRequest(http.MethodGet, ts.url+"/asyncapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "chat.example:8443"
	r := do(t, req)
	var doc map[string]any
	r.json(t, &doc)
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi version %v", doc["asyncapi"])
	}
	if h := pointer(doc, "servers", "node", "host"); h != "chat.example:8443" {
		t.Errorf("server host %v, want the request's host", h)
	}
	if p := pointer(doc, "servers", "node", "protocol"); p != "ws" {
		t.Errorf("server protocol %v", p)
	}
	if a := pointer(doc, "channels", "chat", "address"); a != wsChatPath {
		t.Errorf("channel address %v", a)
	}
	want := map[string]string{"receiveAuth": "auth", "receiveMessage": "message", "sendToken": "token", "sendDone": "done", "sendError": "error",
		"receiveSubscribe": "subscribe", "receiveUnsubscribe": "unsubscribe", "sendSubscribed": "subscribed", "sendUnsubscribed": "unsubscribed",
		"sendRunEvent": "run_event", "receiveResume": "resume", "sendRestart": "restart"}
	ops, _ := doc["operations"].(map[string]any)
	if len(ops) != len(want) {
		t.Errorf("operations %v, want %v", slices.Sorted(maps.Keys(ops)), want)
	}
	for id, frame := range want {
		ref := pointer(ops[id], "messages")
		if refs, _ := ref.([]any); len(refs) != 1 || pointer(refs[0], "$ref") != "#/channels/chat/messages/"+frame {
			t.Errorf("operation %s messages %v", id, ref)
		}
		summary, _ := pointer(doc, "components", "messages", frame, "summary").(string)
		if summary == "" || summary == "The "+frame+" frame." {
			t.Errorf("frame %s has no written summary (add it to frameSummary)", frame)
		}
	}
	if r := pointer(doc, "components", "schemas", "MessageFrame", "required"); !reflect.DeepEqual(r, []any{"content", "type"}) {
		t.Errorf("message frame required %v", r)
	}
	if d, _ := pointer(doc, "info", "description").(string); !strings.Contains(d, "within 5s") || !strings.Contains(d, "64 KiB") {
		t.Errorf("the description does not carry ws.go's limits: %s", d)
	}
}

// Frame structs with broken tags, for TestFrameTags.
type (
	frameNoType struct {
		Kind string `json:"kind" frame:"a"`
	}
	frameUntagged struct {
		Type  string `json:"type" frame:"a"`
		Loose string `json:"loose"`
	}
	frameUnknown struct {
		Type  string `json:"type" frame:"a,b"`
		Field string `json:"field" frame:"a,c!"`
	}
	frameGood struct {
		Type  string `json:"type" frame:"a!,b!"`
		Both  string `json:"both,omitempty" frame:"a,b!" doc:"in both"`
		OnlyA int    `json:"only_a" frame:"a!"`
		Skip  string `json:"-"`
	}
)

func TestFrameTags(t *testing.T) {
	for _, tc := range []struct {
		typ     any
		wantErr string
	}{
		{frameNoType{}, "no Type field"},
		{frameUntagged{}, "Loose has no frame tag"},
		{frameUnknown{}, `names frame type "c"`},
		{frameGood{}, ""},
	} {
		sb := newSchemaBuilder()
		frames, err := sb.frames(reflect.TypeOf(tc.typ), false)
		if tc.wantErr != "" {
			if !errors.Is(err, errFrameTags) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%T: error %v, want one containing %q", tc.typ, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(frames) != 2 || frames[0].name != "a" || frames[1].name != "b" {
			t.Fatalf("%T: %v %+v", tc.typ, err, frames)
		}
		props := func(f wsFrame) []string {
			var out []string
			for k := range f.schema["properties"].(map[string]any) {
				out = append(out, k)
			}
			sort.Strings(out)
			return out
		}
		if got := props(frames[0]); !reflect.DeepEqual(got, []string{"both", "only_a", "type"}) {
			t.Errorf("frame a properties %v", got)
		}
		if got := props(frames[1]); !reflect.DeepEqual(got, []string{"both", "type"}) {
			t.Errorf("frame b properties %v", got)
		}
		if r := frames[0].schema["required"]; !reflect.DeepEqual(r, []string{"only_a", "type"}) {
			t.Errorf("frame a required %v", r)
		}
		if r := frames[1].schema["required"]; !reflect.DeepEqual(r, []string{"both", "type"}) {
			t.Errorf("frame b required %v", r)
		}
		if c := pointer(frames[1].schema, "properties", "type", "const"); c != "b" {
			t.Errorf("frame b type const %v", c)
		}
	}
	// The real frame structs are tagged completely.
	for _, typ := range []any{wsClientFrame{}, wsServerFrame{}, wsRunEventFrame{}} {
		sb := newSchemaBuilder()
		if _, err := sb.frames(reflect.TypeOf(typ), false); err != nil {
			t.Errorf("%T: %v", typ, err)
		}
	}
}
