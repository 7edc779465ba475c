package signatures

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// TestParsePyLiteral mirrors the literals DSPy's parse_value reads through
// json_repair and ast.literal_eval (dspy/adapters/utils.py; tests/adapters/
// test_adapter_utils.py, test_parse_value_json_repair).
func TestParsePyLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`{'key': 'value'}`, map[string]any{"key": "value"}},
		{`['a', 'b']`, []any{"a", "b"}},
		{`["it's", 'say "hi"']`, []any{"it's", `say "hi"`}},
		{`{'score': 123_456.789}`, map[string]any{"score": 123456.789}},
		{`(1, 2.0, -3)`, []any{1, 2.0, -3}},
		{`(1,)`, []any{1}},
		{`(1)`, 1},
		{`[True, False, None, true, false, null]`, []any{true, false, nil, true, false, nil}},
		{`{1: 'a', True: 'b', None: 'c'}`, map[string]any{"1": "a", "True": "b", "None": "c"}},
		{`{'a', 'b'}`, []any{"a", "b"}},
		{`[1, 2, 3,]`, []any{1, 2, 3}},
		{`{'a': [1, {'b': (2, 3)}],}`, map[string]any{"a": []any{1, map[string]any{"b": []any{2, 3}}}}},
		{`'ab' "cd"`, "abcd"},
		{`'''multi
line'''`, "multi\nline"},
		{`r'\d+'`, `\d+`},
		{`'tab\there\x41\u00e9\N'`, "tab\there" + "A" + "é" + `\N`},
		{`"\ud83d\ude00"`, "😀"},
		{`0x1F`, 31},
		{`1_000`, 1000},
		{`1e3`, 1000.0},
		{`.5`, 0.5},
		{`- 2`, -2},
		{`[1, 2]  # a comment`, []any{1, 2}},
		{`{}`, map[string]any{}},
		{`[]`, []any{}},
		// Beyond float64, kept as text as encoding/json's values keep it.
		{`1e999`, "1e999"},
		{`-` + strings.Repeat("9", 400), "-" + strings.Repeat("9", 400)},
	}
	for _, tt := range tests {
		got, err := parsePyLiteral(tt.in)
		if err != nil {
			t.Errorf("parsePyLiteral(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parsePyLiteral(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestParsePyLiteralRejects(t *testing.T) {
	for _, in := range []string{
		"", "not json or literal", "[1, 2", "{'a': 1", "{'a' 1}", "'open", "[1 2]", "0123", "1__0", "1_",
		"{[1]: 2}", "[1] x", "-inf", "+Infinity", "-nan", "[-inf]", ".", "-.e1", "os.system('x')", "'a\nb'", strings.Repeat("[", maxLiteralDepth+2),
	} {
		if v, err := parsePyLiteral(in); err == nil {
			t.Errorf("parsePyLiteral(%q) = %#v, want an error", in, v)
		}
	}
}

// TestParseReplyPythonLiterals mirrors DSPy's ChatAdapter accepting Python
// literal syntax in typed fields: tests/adapters/test_chat_adapter.py,
// test_chat_adapter_parses_float_with_underscores, and
// tests/adapters/test_adapter_utils.py, test_parse_value_literal.
func TestParseReplyPythonLiterals(t *testing.T) {
	score, err := New([]Field{{Name: "question"}}, []Field{{Name: "score", Type: Type{Kind: KindObject, Name: "Score",
		Schema: json.RawMessage(`{"type":"object","properties":{"score":{"type":"number"}},"required":["score"]}`)}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sig  Signature
		text string
		want Values
	}{
		{"float with underscores", score, reply("score", "{'score': 123_456.789}"), Values{"score": map[string]any{"score": 123456.789}}},
		{"list of single-quoted strings", MustParse("q -> tags: list[str]"), reply("tags", "['a', 'b']"), Values{"tags": []any{"a", "b"}}},
		{"tuple as a list", MustParse("q -> pair: list[int]"), reply("pair", "(1, 2)"), Values{"pair": []any{1, 2}}},
		{"dict with Python constants", MustParse("q -> d: dict"), reply("d", "{'ok': True, 'none': None}"), Values{"d": map[string]any{"ok": true, "none": nil}}},
		{"fenced Python list", MustParse("q -> xs: list[float]"), reply("xs", "```python\n[1.5, 2_0.0]\n```"), Values{"xs": []any{1.5, 20.0}}},
		{"Literal echoed", MustParse("q -> a: Literal['yes', 'no']"), reply("a", "Literal['yes']"), Values{"a": "yes"}},
		{"str[] echoed", MustParse("q -> a: Literal['option1', 'option2']"), reply("a", "str[option1]"), Values{"a": "option1"}},
		{"quoted option", MustParse("q -> a: Literal['option1', 'option2']"), reply("a", `"option2"`), Values{"a": "option2"}},
		{"float with underscores alone", MustParse("q -> f: float"), reply("f", "1_000.5"), Values{"f": 1000.5}},
		{"no markers, a Python dict", MustParse("question -> answer"), "{'answer': 'Paris'}", Values{"answer": "Paris"}},
	}
	for _, tt := range tests {
		got, err := ParseReply(tt.sig, tt.text)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, got, tt.want)
		}
	}
}

// TestPredictJSONModePythonDict mirrors tests/adapters/test_chat_adapter.py,
// test_chat_adapter_fallback_to_json_adapter_on_exception: a JSON-mode
// reply written as a Python dict parses.
func TestPredictJSONModePythonDict(t *testing.T) {
	model := lmtest.Texts("no markers here", "{'answer': 7}")
	p := NewPredict(qaSignature(t), PredictOptions{Retries: -1, JSONFallback: true})
	res, err := Execute(t.Context(), model, p, Values{"question": "q", "context": []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["answer"] != 7 || model.Calls() != 2 {
		t.Errorf("outputs = %v after %d calls", res.Outputs, model.Calls())
	}
}

// TestPredictPythonListNoRetry: a Python list in a list field is accepted
// on the first reply; no retry is spent on it.
func TestPredictPythonListNoRetry(t *testing.T) {
	model := lmtest.Texts(reply("tags", "['x', 'y']"))
	p := NewPredict(MustParse("q -> tags: list[str]"), PredictOptions{})
	res, err := Execute(t.Context(), model, p, Values{"q": "?"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Outputs["tags"], []any{"x", "y"}) || model.Calls() != 1 {
		t.Errorf("outputs = %v after %d calls", res.Outputs, model.Calls())
	}
}
