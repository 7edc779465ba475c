package signatures

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// TestParseTypeErrors: the new type syntax still rejects nonsense.
func TestParseTypeErrors(t *testing.T) {
	for _, in := range []string{
		"q -> a: None", "q -> a: Optional[", "q -> a: Union[None]", "q -> a: tuple[int", "q -> a: int |",
		"q -> a: (int", "q -> a: tuple[History]", "q -> a: Union[History, int]",
	} {
		if _, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

// TestTypeParsing mirrors tests/adapters/test_adapter_utils.py,
// test_parse_value_union and test_parse_value_basic_types, for the types
// DSPy parses and kowai did not: Optional, unions and tuples.
func TestTypeParsing(t *testing.T) {
	typ := func(s string) Type {
		t.Helper()
		return MustParse("q -> a: " + s).Outputs()[0].Type
	}
	tests := []struct {
		typ  string
		text string
		want any
	}{
		{"Optional[str]", "test", "test"},
		{"str | None", "text with [placeholder]", "text with [placeholder]"},
		{"int | None", "5", 5},
		{"int | None", "None", nil},
		{"Optional[float]", "null", nil},
		{"Union[int, str, None]", "fallback", "fallback"},
		{"int | str | None", "5", 5},
		{"Union[int, str, None]", "text with [placeholder]", "text with [placeholder]"},
		{"Union[list[str], dict[str, Any]]", "{'k': 'v'}", map[string]any{"k": "v"}},
		{"Union[list[str], dict[str, Any]]", "['x']", []any{"x"}},
		{"tuple[int, str]", "(1, 'a')", []any{1, "a"}},
		{"tuple[int, Optional[float], list[str]]", "[1, None, ['x']]", []any{1, nil, []any{"x"}}},
		{"list[Optional[int]]", "[1, None]", []any{1, nil}},
	}
	for _, tt := range tests {
		got, err := typ(tt.typ).parseText(tt.text)
		if err != nil {
			t.Errorf("%s from %q: %v", tt.typ, tt.text, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s from %q = %#v, want %#v", tt.typ, tt.text, got, tt.want)
		}
	}
	for _, bad := range []struct{ typ, text string }{
		{"tuple[int, str]", "[1]"}, {"tuple[int, str]", "['a', 'b']"}, {"Union[int, bool]", "maybe"},
	} {
		if v, err := typ(bad.typ).parseText(bad.text); err == nil {
			t.Errorf("%s from %q = %#v, want an error", bad.typ, bad.text, v)
		}
	}
}

// TestOptionalOutputsMissing mirrors tests/adapters/test_chat_adapter.py,
// test_optional_type_syntax_output_fields_fall_back_to_defaults and
// test_optional_type_syntax_missing_required_output_field_still_raises.
func TestOptionalOutputsMissing(t *testing.T) {
	sig, err := New([]Field{{Name: "question"}}, []Field{
		{Name: "answer"},
		{Name: "note", Type: OptionalOf(String), Default: "No note"},
		{Name: "maybe", Type: OptionalOf(String)},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseReply(sig, reply("answer", "42"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Values{"answer": "42", "note": "No note", "maybe": nil}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	for _, r := range []string{reply("note", "present"), reply("maybe", "present")} {
		if _, err := ParseReply(sig, r); !errors.Is(err, ErrParse) {
			t.Errorf("without the required answer: %v, want ErrParse", err)
		}
	}
}

// TestInputDefaults mirrors dspy/predict/predict.py (_forward_preprocess,
// "Populate default values for missing input fields"): a missing input with
// a default takes it; a missing optional input is left out; a missing
// required one is still an error.
func TestInputDefaults(t *testing.T) {
	sig, err := New([]Field{{Name: "question"}, {Name: "tone", Default: "formal"}, {Name: "extra", Type: OptionalOf(String)}},
		[]Field{{Name: "answer"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	model := lmtest.Texts(reply("answer", "ok"))
	if _, err := Execute(t.Context(), model, NewPredict(sig, PredictOptions{}), Values{"question": "q"}); err != nil {
		t.Fatal(err)
	}
	last := text(model.Requests()[0].Messages[1])
	if !strings.Contains(last, "[[ ## tone ## ]]\nformal") || strings.Contains(last, "[[ ## extra ## ]]") {
		t.Errorf("user message:\n%s", last)
	}
	if _, err := Execute(t.Context(), lmtest.Texts(), NewPredict(sig, PredictOptions{}), Values{"tone": "x"}); !errors.Is(err, ErrMissingInput) {
		t.Errorf("missing question: %v", err)
	}
}

// TestHistoryGivenAString: DSPy makes an untyped "history" a str
// (dspy/signatures/signature.py types it str like any untyped field); kowai
// keeps it a History and renders a string given to it as text instead of
// failing.
func TestHistoryGivenAString(t *testing.T) {
	model := lmtest.Texts(reply("response", "fine"))
	p := NewPredict(MustParse("message, history -> response"), PredictOptions{})
	if _, err := Execute(t.Context(), model, p, Values{"message": "hi", "history": "user: hello\nbot: hey"}); err != nil {
		t.Fatal(err)
	}
	msgs := model.Requests()[0].Messages
	if last := text(msgs[len(msgs)-1]); len(msgs) != 2 || !strings.Contains(last, "[[ ## history ## ]]\nuser: hello\nbot: hey") {
		t.Errorf("%d messages, last:\n%s", len(msgs), last)
	}
}

// TestOptionalTypeNotes: Optional, union and tuple outputs get DSPy's JSON
// schema note and Python type hint (dspy/adapters/utils.py,
// translate_field_type; chat_adapter.py, user_message_output_requirements).
func TestOptionalTypeNotes(t *testing.T) {
	sig := MustParse("q -> a: Optional[int], b: tuple[int, str], c: str | None")
	sys := systemMessage(sig)
	for _, want := range []string{
		`{a}        # note: the value you produce must adhere to the JSON schema: {"anyOf": [{"type": "integer"}, {"type": "null"}]}`,
		`{b}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "maxItems": 2, "minItems": 2, "prefixItems": [{"type": "integer"}, {"type": "string"}]}`,
		`{c}        # note: the value you produce must adhere to the JSON schema: {"anyOf": [{"type": "string"}, {"type": "null"}]}`,
	} {
		if !strings.Contains(sys, want) {
			t.Errorf("system message lacks %q:\n%s", want, sys)
		}
	}
	if req := outputRequirements(sig); !strings.Contains(req, "`[[ ## c ## ]]` (must be formatted as a valid Python Optional[str])") {
		t.Errorf("requirements: %s", req)
	}
}

// TestPointerFieldsAreOptional: a nil-able Go field is Optional[T], as
// pydantic reads T | None.
func TestPointerFieldsAreOptional(t *testing.T) {
	type in struct{ Q string }
	type out struct{ N *int }
	sig, err := SignatureFor[in, out]()
	if err != nil {
		t.Fatal(err)
	}
	if got := sig.Outputs()[0].Type.String(); got != "Optional[int]" {
		t.Errorf("*int is %s", got)
	}
}

// TestFormatValuesAsDSPy mirrors the value rendering DSPy's tests pin
// (tests/adapters/test_chat_adapter.py): a list given to a str input is a
// numbered list of «blobs» (the [1] «alpha» / [2] «beta» exact-messages
// test), floats keep their decimal point, JSON uses ", " and ": ".
func TestFormatValuesAsDSPy(t *testing.T) {
	tests := []struct {
		v    any
		text bool
		want string
	}{
		{[]any{"alpha", "beta"}, true, "[1] «alpha»\n[2] «beta»"},
		{[]string{"only"}, true, "«only»"},
		{[]any{}, true, "N/A"},
		{[]any{"two\nlines", "x"}, true, "[1] «««\n    two\n    lines\n»»»\n[2] «x»"},
		{[]any{"alpha", "beta"}, false, `["alpha", "beta"]`},
		{1.0, false, "1.0"},
		{0.5, false, "0.5"},
		{1e16, false, "1e+16"},
		{1e6, false, "1000000.0"},
		{map[string]any{"b": 1.0, "a": []any{true, nil}}, false, `{"a": [true, null], "b": 1.0}`},
		{struct {
			Name string `json:"name"`
			Age  int    `json:"age"`
		}{"Ada", 36}, false, `{"name": "Ada", "age": 36}`},
	}
	for _, tt := range tests {
		if got := formatInput(tt.v, tt.text); got != tt.want {
			t.Errorf("formatInput(%#v, %v) = %q, want %q", tt.v, tt.text, got, tt.want)
		}
	}
}

// TestLiteralQuoting mirrors tests/adapters/test_chat_adapter.py's
// parametrised Literal cases (_quoted_string_for_literal_type_annotation).
func TestLiteralQuoting(t *testing.T) {
	if got, want := Enum("one", `three"`, "she's here", `both"and'`).String(),
		`Literal['one', 'three"', "she's here", 'both"and\'']`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestFieldListTrailingSpace mirrors tests/adapters/test_chat_adapter.py,
// test_chat_adapter_format_exact_messages_with_incomplete_demo: "(str): "
// keeps its space except on a section's last line.
func TestFieldListTrailingSpace(t *testing.T) {
	sys := systemMessage(MustParse("question, context -> answer, confidence: float"))
	want := "Your input fields are:\n1. `question` (str): \n2. `context` (str):\nYour output fields are:\n1. `answer` (str): \n2. `confidence` (float):\n"
	if !strings.HasPrefix(sys, want) {
		t.Errorf("got:\n%q\nwant prefix:\n%q", sys, want)
	}
}

// TestStructDefaults: a default tag is DSPy's InputField(default=...) /
// OutputField(default=...), read as the field's type.
func TestStructDefaults(t *testing.T) {
	type in struct {
		Q     string
		Limit int `default:"3"`
	}
	type out struct {
		Answer string
		Note   *string `default:"No note"`
	}
	sig, err := SignatureFor[in, out]()
	if err != nil {
		t.Fatal(err)
	}
	if f, _, _ := sig.Field("limit"); f.Default != 3 {
		t.Errorf("limit default %#v", f.Default)
	}
	got, err := ParseReply(sig, reply("answer", "42"))
	if err != nil || got["note"] != "No note" {
		t.Errorf("%v %v", got, err)
	}
	type bad struct {
		N int `default:"many"`
	}
	if _, err := SignatureFor[bad, out](); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("bad default: %v", err)
	}
}
