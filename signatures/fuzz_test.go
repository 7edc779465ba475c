package signatures

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"question -> answer",
		"question, context: list[str] -> answer: int",
		"message, history -> response",
		"t -> l: Literal['a', 'b\\'c'], s: float, m: dict[str, Any], g: list[list[bool]]",
		"-> a", "a ->", "a: Literal[", "a: list[", "q -> a: Literal[\"x\\\\\"]", "ü, ß -> ø",
		"a: str | None, b: None | (int | float) -> c: Union[int, str, None], d: tuple[int, Optional[list[str]]], e: tuple[bool, ...]",
		"q -> a: Optional[Union[int, str]], b: tuple[()], c: Literal[\"it's\", 'say \"hi\"']",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("Parse(%q) = %v, want a *SyntaxError within the input", s, err)
			}
			return
		}
		again, err := Parse(sig.String())
		if err != nil || again.String() != sig.String() {
			t.Fatalf("round trip of %q via %q: %v, %q", s, sig.String(), err, again.String())
		}
	})
}

// FuzzParseReply checks that parsing never panics, that failures are
// *ParseError with the raw reply, and that streaming a string field yields
// exactly the parsed value, whatever the chunking.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		reply("answer", "42", "response", "hello"),
		"[[ ## answer ## ]]7[[ ## response ## ]] text [[ ## completed ## ]]",
		"[[ ## response ## ]]\n[[ ## answer ## ]]\n```json\n1\n```",
		"[[[ ## response ## ]]] x [[ ## resp",
		"no markers", "[[ ##  ## ]] [[ ## a-b ## ]]", "[[ ## answer ## ]]\n1e400", "[[ ## response ## ]]\u00a0x\u2028",
	} {
		f.Add(s, uint8(3))
	}
	sig := MustParse("q -> answer: int, response, items: list[float]")
	loose := MustParse("q -> response")
	f.Fuzz(func(t *testing.T, s string, chunk uint8) {
		if got, want := scanMarkers(s), markerRE.FindAllStringSubmatchIndex(s, -1); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("markers of %q: scanned %v, the reference pattern finds %v", s, got, want)
		}
		if _, err := ParseReply(sig, s); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Raw != s {
				t.Fatalf("ParseReply error %v is not a *ParseError keeping the raw reply", err)
			}
		}
		out, err := ParseReply(loose, s)
		if err != nil {
			return
		}
		var got strings.Builder
		st := &fieldStreamer{field: "response", emit: func(_ context.Context, c string) error {
			got.WriteString(c)
			return nil
		}}
		size := int(chunk%16) + 1
		for i := 0; i < len(s); i += size {
			if err := st.write(context.Background(), []byte(s[i:min(i+size, len(s))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got.String() != out["response"] {
			t.Fatalf("streamed %q, parsed %q", got.String(), out["response"])
		}
	})
}

// markerRE is the definition of a marker that nextMarker implements without
// a regexp engine.
var markerRE = regexp.MustCompile(`\[\[ ## (\w+) ## \]\]`)

// scanMarkers lists the markers nextMarker finds in s, in the form of
// FindAllStringSubmatchIndex.
func scanMarkers(s string) [][]int {
	var locs [][]int
	for start, end, name := nextMarker(s, 0); start >= 0; start, end, name = nextMarker(s, end) {
		at := start + len(markerOpen)
		locs = append(locs, []int{start, end, at, at + len(name)})
	}
	return locs
}

// FuzzPyLiteral checks that the lenient parser never panics, that it reads
// every JSON document exactly as encoding/json does (it is a superset), and
// that what it returns marshals back to JSON.
func FuzzPyLiteral(f *testing.F) {
	for _, s := range []string{
		`{'key': 'value'}`, `['a', "b", '''c''']`, `{'score': 123_456.789}`, `(1, (2,), ())`, `{1, 2}`,
		`[True, None, false, null]`, `{"a": [1, 2.5e3, -0, "\u00e9\ud83d\ude00"]}`, `r'\d' b"x" u'y'`, `0x_ff`, `1_2.3_4e-5`,
		`"\x41\N{x}\
"`, "[1, # c\n 2]", `9223372036854775808`, `"\ud800"`, `[-inf, +1e5, -.5]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parsePyLiteral(s)
		if json.Valid([]byte(s)) {
			var want any
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			if derr := dec.Decode(&want); derr != nil {
				t.Fatalf("json.Valid but Decode(%q): %v", s, derr)
			}
			if err != nil {
				t.Fatalf("parsePyLiteral(%q) rejects valid JSON: %v", s, err)
			}
			if w := jsonPlain(want); !reflect.DeepEqual(v, w) {
				t.Fatalf("parsePyLiteral(%q) = %#v, encoding/json reads %#v", s, v, w)
			}
		}
		if err != nil {
			if !errors.Is(err, errLiteral) {
				t.Fatalf("parsePyLiteral(%q) error %v does not wrap errLiteral", s, err)
			}
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("parsePyLiteral(%q) = %#v, which does not marshal: %v", s, v, err)
		}
	})
}
