package signatures

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // String() of the result
	}{
		{"question -> answer", "question -> answer"},
		{"  question ,context:list[str]->answer: int ", "question, context: list[str] -> answer: int"},
		{"message, history -> response", "message, history -> response"},
		{"text -> label: Literal['pos', 'neg'], confidence: float", "text -> label: Literal['pos', 'neg'], confidence: float"},
		// Quoting as tests/adapters/test_chat_adapter.py's Literal cases
		// (DSPy's _quoted_string_for_literal_type_annotation).
		{`text -> label: Literal["a b", 'it\'s']`, `text -> label: Literal['a b', "it's"]`},
		{`t -> l: Literal['say "hi"', 'both"and\'']`, `t -> l: Literal['say "hi"', 'both"and\'']`},
		// Optional, PEP 604 unions, Union and tuple, as
		// tests/signatures/test_signature.py, test_pep604_union_type_inline
		// and test_pep604_union_type_inline_equivalence.
		{"input1: str | None, input2: None | int -> output_union: int | str",
			"input1: Optional[str], input2: Optional[int] -> output_union: Union[int, str]"},
		{"input: Optional[str] -> output: Union[int, str]", "input: Optional[str] -> output: Union[int, str]"},
		{"input: str | (int | float) | None -> output: str", "input: Union[str, int, float, None] -> output"},
		{"q -> o: Union[int, None]", "q -> o: Optional[int]"},
		{"q -> o: Tuple[int, Optional[float], list[str]]", "q -> o: tuple[int, Optional[float], list[str]]"},
		{"q -> o: tuple[int, ...]", "q -> o: list[int]"},
		{"q: dict[str, list[Optional[Tuple[int, str]]]] -> o: Union[list[str], dict[str, Any]]",
			"q: dict[str, Any] -> o: Union[list[str], dict[str, Any]]"},
		{"q -> ok: bool, meta: dict", "q -> ok: bool, meta: dict"},
		{"q -> meta: dict[str, Any]", "q -> meta: dict[str, Any]"},
		{"q -> grid: list[list[int]]", "q -> grid: list[list[int]]"},
		{"-> answer", " -> answer"},
		{"q: string -> a: str", "q -> a"},
		{"h: History, q -> a", "h, q -> a"},
	}
	for _, tt := range tests {
		sig, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := sig.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseTypes(t *testing.T) {
	sig := MustParse("message, history, ctx: list[str] -> answer: int, tag: Literal['a','b'], score: float, meta: dict")
	in, out := sig.Inputs(), sig.Outputs()
	if in[1].Type.Kind != KindHistory || in[2].Type.Kind != KindList || in[2].Type.Elem.Kind != KindString {
		t.Fatalf("input types = %+v", in)
	}
	kinds := []Kind{KindInt, KindEnum, KindFloat, KindObject}
	for i, k := range kinds {
		if out[i].Type.Kind != k {
			t.Errorf("output %s kind = %v, want %v", out[i].Name, out[i].Type.Kind, k)
		}
	}
	if got := strings.Join(out[1].Type.Options, "|"); got != "a|b" {
		t.Errorf("enum options = %q", got)
	}
	if in[0].Prefix != "Message:" {
		t.Errorf("prefix = %q", in[0].Prefix)
	}
	want := "Given the fields `message`, `history`, `ctx`, produce the fields `answer`, `tag`, `score`, `meta`."
	if sig.Instructions() != want {
		t.Errorf("instructions = %q", sig.Instructions())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		pos int // 1-based column in the message
		msg string
	}{
		{"question answer", 10, `expected "->"`},
		{"question ->", 12, "expected a field name, got the end"},
		{"q -> a: integer", 9, `unknown type "integer"`},
		{"q -> a: list[int", 17, `expected ']'`},
		{"q, q -> a", 4, `duplicate field "q"`},
		{"q -> a: Literal[a]", 17, "expected a quoted Literal option"},
		{"q -> a: Literal['x", 17, "unterminated string"},
		{"q -> a b", 8, `unexpected "b"`},
		{"q -> history: History", 6, "cannot be a History"},
		{"q -> 1a", 6, "expected a field name"},
		{"", 1, "expected"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error = %v, want *SyntaxError", tt.in, err)
			continue
		}
		if se.Pos+1 != tt.pos || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Parse(%q) = column %d %q, want column %d containing %q", tt.in, se.Pos+1, se.Msg, tt.pos, tt.msg)
		}
		if !strings.Contains(err.Error(), "column") {
			t.Errorf("error %q does not name the column", err)
		}
	}
}

func TestSignatureImmutable(t *testing.T) {
	base := MustParse("question -> answer")
	withCtx, err := base.Prepend(Input, Field{Name: "context", Type: List(String)})
	if err != nil {
		t.Fatal(err)
	}
	appended, err := withCtx.Append(Output, Field{Name: "confidence", Type: Float})
	if err != nil {
		t.Fatal(err)
	}
	instr := appended.WithInstructions("Answer tersely.")
	deleted := instr.Delete("context")

	if base.String() != "question -> answer" {
		t.Errorf("base changed: %s", base)
	}
	if withCtx.String() != "context: list[str], question -> answer" {
		t.Errorf("prepend = %s", withCtx)
	}
	if appended.String() != "context: list[str], question -> answer, confidence: float" {
		t.Errorf("append = %s", appended)
	}
	if appended.Instructions() != base.Instructions() {
		t.Errorf("insert changed instructions: %q", appended.Instructions())
	}
	if instr.Instructions() != "Answer tersely." || appended.Instructions() == "Answer tersely." {
		t.Errorf("WithInstructions leaked: %q / %q", instr.Instructions(), appended.Instructions())
	}
	if deleted.String() != "question -> answer, confidence: float" || instr.String() != appended.String() {
		t.Errorf("delete = %s, instr = %s", deleted, instr)
	}
	ins := base.Inputs()
	ins[0].Name = "mutated"
	if base.Inputs()[0].Name != "question" {
		t.Error("Inputs returned the internal slice")
	}
	if _, err := base.Append(Output, Field{Name: "answer"}); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("duplicate append error = %v", err)
	}
	if _, err := base.Append(Output, Field{Name: "h", Type: HistoryType}); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("history output error = %v", err)
	}
}

type qaIn struct {
	Question string   `desc:"the question"`
	Context  []string `json:"context" dspy:"input"`
	History  History
}

func (qaIn) Instructions() string { return "Answer from the context." }

type citation struct {
	Source string `json:"source"`
	Line   int    `json:"line,omitempty"`
}

type qaOut struct {
	Answer     int      `desc:"the answer" dspy:"output"`
	Verdict    string   `enum:"yes,no"`
	Confidence float64  `json:"confidence"`
	Cite       citation `json:"cite"`
	Tags       []string
	Skip       string `dspy:"-"`
}

func TestSignatureFor(t *testing.T) {
	sig, err := SignatureFor[qaIn, qaOut]()
	if err != nil {
		t.Fatal(err)
	}
	want := "question, context: list[str], history -> answer: int, verdict: Literal['yes', 'no'], confidence: float, cite: citation, tags: list[str]"
	if sig.String() != want {
		t.Errorf("String = %s", sig)
	}
	if sig.Instructions() != "Answer from the context." {
		t.Errorf("instructions = %q", sig.Instructions())
	}
	f, _, _ := sig.Field("cite")
	// Titles and the note's rendering as pydantic and DSPy write them:
	// tests/adapters/test_chat_adapter.py, the Summary schema of the
	// pydantic exact-messages test.
	if string(f.Type.Schema) != `{"properties":{"line":{"title":"Line","type":"integer"},"source":{"title":"Source","type":"string"}},"required":["source"],"title":"citation","type":"object"}` {
		t.Errorf("schema = %s", f.Type.Schema)
	}
	if got, want := f.Type.note(), `# note: the value you produce must adhere to the JSON schema: {"type": "object", "properties": {"line": {"type": "integer", "title": "Line"}, "source": {"type": "string", "title": "Source"}}, "required": ["source"], "title": "citation"}`; got != want {
		t.Errorf("note:\n%s\nwant:\n%s", got, want)
	}
	type badRole struct {
		A string `dspy:"output"`
	}
	if _, err := SignatureFor[badRole, qaOut](); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("role mismatch error = %v", err)
	}
	type badType struct{ C chan int }
	if _, err := SignatureFor[qaIn, badType](); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("chan field error = %v", err)
	}
}
