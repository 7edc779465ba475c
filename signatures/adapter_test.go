package signatures

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/llms"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func dumpMessages(msgs []llms.MessageContent) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("===== " + string(m.Role) + " =====\n")
		for _, p := range m.Parts {
			b.WriteString(p.(llms.TextContent).Text)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// formatExample is the system message of the shared prompt-format contract
// (the one the offline model reads), copied verbatim.
const formatExample = "Your input fields are:\n" +
	"1. `question` (str): the question\n" +
	"2. `context` (list[str]):\n" +
	"Your output fields are:\n" +
	"1. `answer` (int): the answer\n" +
	"All interactions will be structured in the following way, with the appropriate values filled in.\n\n" +
	"[[ ## question ## ]]\n{question}\n\n" +
	"[[ ## context ## ]]\n{context}\n\n" +
	"[[ ## answer ## ]]\n{answer}        # note: the value you produce must be a single int value\n\n" +
	"[[ ## completed ## ]]\n" +
	"In adhering to this structure, your objective is: \n" +
	"        Given the fields `question`, `context`, produce the fields `answer`."

func qaSignature(t *testing.T) Signature {
	t.Helper()
	sig, err := New(
		[]Field{{Name: "question", Desc: "the question"}, {Name: "context", Type: List(String)}},
		[]Field{{Name: "answer", Type: Int, Desc: "the answer"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestRenderMatchesFormatContract(t *testing.T) {
	msgs, err := Render(qaSignature(t), nil, Values{"question": "How many?", "context": []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs[0].Parts[0].(llms.TextContent).Text; got != formatExample {
		t.Errorf("system message:\n%s\nwant:\n%s", got, formatExample)
	}
	// A list value is json.dumps'd with ", " (dspy/adapters/utils.py,
	// format_field_value; the person input of tests/adapters/
	// test_chat_adapter.py's pydantic exact-message test).
	wantUser := "[[ ## question ## ]]\nHow many?\n\n[[ ## context ## ]]\n[\"a\", \"b\"]\n\n" +
		"Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]` (must be formatted as a valid Python int), and then ending with the marker for `[[ ## completed ## ]]`."
	if got := msgs[1].Parts[0].(llms.TextContent).Text; got != wantUser {
		t.Errorf("user message:\n%q\nwant:\n%q", got, wantUser)
	}
}

func TestRenderGolden(t *testing.T) {
	multi := MustParse("text, meta: dict -> label: Literal['pos', 'neg'], ok: bool, score: float, tags: list[str], extra: dict, note").
		WithInstructions("Classify the text.\n  Be strict.")
	tests := []struct {
		name   string
		sig    Signature
		demos  []Example
		inputs Values
	}{
		{"qa.golden", qaSignature(t), nil, Values{"question": "Why?", "context": []any{"x"}}},
		{"types.golden", multi, nil, Values{"text": "great", "meta": map[string]any{"lang": "en", "n": 2}}},
		{"demos.golden", MustParse("question -> reasoning, answer: int"), []Example{
			{Inputs: Values{"question": "1+1"}, Outputs: Values{"reasoning": "add", "answer": 2}},
			{Inputs: Values{"question": "2+2"}, Outputs: Values{"answer": 4}},
			{Inputs: Values{"question": "no outputs"}},
		}, Values{"question": "3+3"}},
		{"history.golden", MustParse("message, history -> response"), []Example{
			{Inputs: Values{"message": "demo in"}, Outputs: Values{"response": "demo out"}},
		}, Values{"message": "and now?", "history": History{Messages: []Values{
			{"message": "hi", "response": "hello"},
			{"message": "how are you", "response": "fine"},
		}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := Render(tt.sig, tt.demos, tt.inputs)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, dumpMessages(msgs))
		})
	}
}

func TestRenderHistoryFromJSON(t *testing.T) {
	sig := MustParse("message, history -> response")
	fromJSON := Values{"message": "m", "history": map[string]any{"messages": []any{map[string]any{"message": "a", "response": "b"}}}}
	asList := Values{"message": "m", "history": []any{map[string]any{"message": "a", "response": "b"}}}
	typed := Values{"message": "m", "history": &History{Messages: []Values{{"message": "a", "response": "b"}}}}
	var want string
	for i, in := range []Values{typed, fromJSON, asList} {
		msgs, err := Render(sig, nil, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 4 {
			t.Fatalf("case %d: %d messages, want 4", i, len(msgs))
		}
		if i == 0 {
			want = dumpMessages(msgs)
		} else if got := dumpMessages(msgs); got != want {
			t.Errorf("case %d renders differently:\n%s", i, got)
		}
	}
	if _, err := Render(sig, nil, Values{"message": "m", "history": 42}); err == nil {
		t.Error("a number as history rendered without error")
	}
}

func TestParseReply(t *testing.T) {
	sig := MustParse("q -> answer: int, ok: bool, label: Literal['Yes', 'No'], score: float, items: list[int], obj: dict, text")
	full := func(answer, ok, label, score, items, obj, text string) string {
		return "[[ ## answer ## ]]\n" + answer + "\n\n[[ ## ok ## ]]\n" + ok + "\n\n[[ ## label ## ]]\n" + label +
			"\n\n[[ ## score ## ]]\n" + score + "\n\n[[ ## items ## ]]\n" + items + "\n\n[[ ## obj ## ]]\n" + obj +
			"\n\n[[ ## text ## ]]\n" + text + "\n\n[[ ## completed ## ]]"
	}
	tests := []struct {
		name    string
		reply   string
		field   string // field to check, or the field at fault
		want    any
		wantErr string
	}{
		{"int", full("42", "True", "Yes", "0.5", "[1,2]", "{}", "hi"), "answer", 42, ""},
		{"int from float", full("42.0", "True", "Yes", "0.5", "[1]", "{}", "hi"), "answer", 42, ""},
		{"int fenced", full("```\n7\n```", "True", "Yes", "0.5", "[1]", "{}", "hi"), "answer", 7, ""},
		{"int trailing period", full("7.", "True", "Yes", "0.5", "[1]", "{}", "hi"), "answer", 7, ""},
		{"int bad", full("seven", "True", "Yes", "0.5", "[1]", "{}", "hi"), "answer", nil, `"seven" is not an int`},
		{"int fractional", full("7.5", "True", "Yes", "0.5", "[1]", "{}", "hi"), "answer", nil, "not an int"},
		{"bool yes", full("1", "yes", "Yes", "0.5", "[1]", "{}", "hi"), "ok", true, ""},
		{"bool False", full("1", "False", "Yes", "0.5", "[1]", "{}", "hi"), "ok", false, ""},
		{"bool quoted", full("1", `"true"`, "Yes", "0.5", "[1]", "{}", "hi"), "ok", true, ""},
		{"bool bad", full("1", "maybe", "Yes", "0.5", "[1]", "{}", "hi"), "ok", nil, "not True or False"},
		{"enum case", full("1", "no", "yes", "0.5", "[1]", "{}", "hi"), "label", "Yes", ""},
		{"enum quoted", full("1", "no", "'No'", "0.5", "[1]", "{}", "hi"), "label", "No", ""},
		{"enum bad", full("1", "no", "Maybe", "0.5", "[1]", "{}", "hi"), "label", nil, `"Maybe" is not one of: Yes; No`},
		{"float", full("1", "no", "No", "1e-2", "[1]", "{}", "hi"), "score", 0.01, ""},
		{"float bad", full("1", "no", "No", "high", "[1]", "{}", "hi"), "score", nil, "not a float"},
		{"list json fenced", full("1", "no", "No", "1", "```json\n[1, 2, 3]\n```", "{}", "hi"), "items", []any{1, 2, 3}, ""},
		{"list bad item", full("1", "no", "No", "1", `[1, "x"]`, "{}", "hi"), "items", nil, "item 1"},
		{"list not json", full("1", "no", "No", "1", "1, 2", "{}", "hi"), "items", nil, "JSON"},
		{"object", full("1", "no", "No", "1", "[]", `{"a": {"b": [1.5]}}`, "hi"), "obj", map[string]any{"a": map[string]any{"b": []any{1.5}}}, ""},
		{"object not object", full("1", "no", "No", "1", "[]", `[1]`, "hi"), "obj", nil, "want a JSON object"},
		{"text trimmed multi-line", full("1", "no", "No", "1", "[]", "{}", "  line one\nline two  "), "text", "line one\nline two", ""},
		{"missing field", "[[ ## answer ## ]]\n1\n\n[[ ## completed ## ]]", "ok", nil, "marker [[ ## ok ## ]] is missing"},
		{"no markers at all", "The answer is 42.", "answer", nil, "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ParseReply(sig, tt.reply)
			if tt.wantErr != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || !errors.Is(err, ErrParse) {
					t.Fatalf("error = %v, want *ParseError", err)
				}
				if pe.Field != tt.field || !strings.Contains(pe.Reason, tt.wantErr) || pe.Raw != tt.reply {
					t.Fatalf("ParseError = field %q reason %q (raw kept: %v), want field %q containing %q", pe.Field, pe.Reason, pe.Raw == tt.reply, tt.field, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := formatValue(out[tt.field]); got != formatValue(tt.want) {
				t.Errorf("%s = %s (%T), want %s", tt.field, got, out[tt.field], formatValue(tt.want))
			}
		})
	}
}

func TestParseReplyMarkersAnywhere(t *testing.T) {
	sig := MustParse("q -> reasoning, answer")
	reply := "Sure! [[ ## reasoning ## ]] think first.[[ ## answer ## ]]final[[ ## completed ## ]]\n" +
		"[[ ## answer ## ]]\nsecond answer ignored"
	out, err := ParseReply(sig, reply)
	if err != nil {
		t.Fatal(err)
	}
	if out["reasoning"] != "think first." || out["answer"] != "final" {
		t.Errorf("outputs = %#v", out)
	}
}

func TestParseJSONReply(t *testing.T) {
	sig := MustParse("q -> answer: int, label: Literal['a', 'b'], note")
	out, err := parseJSONReply(sig, "```json\n{\"answer\": \"12\", \"label\": \"B\", \"note\": 3}\n```")
	if err != nil {
		t.Fatal(err)
	}
	if out["answer"] != 12 || out["label"] != "b" || out["note"] != "3" {
		t.Errorf("outputs = %#v", out)
	}
	if _, err := parseJSONReply(sig, `{"answer": 1}`); !errors.Is(err, ErrParse) {
		t.Errorf("missing key error = %v", err)
	}
}
