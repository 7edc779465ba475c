package signatures

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError is a signature string that cannot be parsed. It wraps
// ErrSyntax.
type SyntaxError struct {
	// Input is the signature string.
	Input string
	// Pos is the byte offset of the problem in Input.
	Pos int
	// Msg says what is wrong.
	Msg string
}

// Error names the column (1-based, in bytes) and the problem.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("signatures: parse %q: column %d: %s", e.Input, e.Pos+1, e.Msg)
}

// Unwrap returns ErrSyntax.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Parse builds a signature from DSPy's string form:
//
//	"question -> answer"
//	"question, context: list[str] -> answer: int"
//	"text -> sentiment: Literal['positive', 'negative'], confidence: float"
//
// Types: str (the default), int, float, bool, list[T], dict (also
// dict[str, Any]), Literal['a', 'b'] for enums (single or double quotes) and
// History. An untyped input named "history" is a History. Instructions are
// DSPy's default; change them with WithInstructions.
func Parse(s string) (Signature, error) {
	p := &sigParser{in: s}
	inputs, err := p.fields(Input)
	if err != nil {
		return Signature{}, err
	}
	p.skipSpace()
	if !strings.HasPrefix(s[p.pos:], "->") {
		return Signature{}, p.errorf("expected \"->\" or \",\"")
	}
	p.pos += 2
	outputs, err := p.fields(Output)
	if err != nil {
		return Signature{}, err
	}
	p.skipSpace()
	if p.pos < len(s) {
		return Signature{}, p.errorf("unexpected %q after the output fields", p.rest())
	}
	if len(outputs) == 0 {
		return Signature{}, p.errorf("expected at least one output field")
	}
	sig, err := New(inputs, outputs, "")
	if err != nil {
		return Signature{}, &SyntaxError{Input: s, Pos: 0, Msg: strings.TrimPrefix(err.Error(), ErrInvalidSignature.Error()+": ")}
	}
	return sig, nil
}

type sigParser struct {
	in  string
	pos int
}

func (p *sigParser) errorf(format string, args ...any) error {
	return &SyntaxError{Input: p.in, Pos: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *sigParser) rest() string {
	r := p.in[p.pos:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *sigParser) skipSpace() {
	for p.pos < len(p.in) {
		r, n := utf8.DecodeRuneInString(p.in[p.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		p.pos += n
	}
}

func (p *sigParser) peek() byte {
	if p.pos < len(p.in) {
		return p.in[p.pos]
	}
	return 0
}

func (p *sigParser) ident() string {
	start := p.pos
	for p.pos < len(p.in) {
		r, n := utf8.DecodeRuneInString(p.in[p.pos:])
		if !(r == '_' || unicode.IsLetter(r) || (p.pos > start && unicode.IsDigit(r))) {
			break
		}
		p.pos += n
	}
	return p.in[start:p.pos]
}

// fields parses "name[: type], ..." up to "->" or the end. Inputs may be
// empty ("-> answer").
func (p *sigParser) fields(role Role) ([]Field, error) {
	var fs []Field
	seen := map[string]bool{}
	for {
		p.skipSpace()
		if role == Input && len(fs) == 0 && strings.HasPrefix(p.in[p.pos:], "->") {
			return nil, nil
		}
		start := p.pos
		name := p.ident()
		if name == "" {
			if p.pos >= len(p.in) {
				return nil, p.errorf("expected a field name, got the end of the string")
			}
			return nil, p.errorf("expected a field name, got %q", p.rest())
		}
		if seen[name] {
			p.pos = start
			return nil, p.errorf("duplicate field %q", name)
		}
		seen[name] = true
		f := Field{Name: name}
		p.skipSpace()
		if p.peek() == ':' {
			p.pos++
			t, err := p.typ()
			if err != nil {
				return nil, err
			}
			f.Type = t
		} else if role == Input && name == "history" {
			f.Type = HistoryType
		}
		if f.Type.Kind == KindHistory && role == Output {
			p.pos = start
			return nil, p.errorf("output %q cannot be a History", name)
		}
		fs = append(fs, f)
		p.skipSpace()
		if p.peek() != ',' {
			return fs, nil
		}
		p.pos++
	}
}

// typ parses a type, with "|" unions (PEP 604) and None among them.
func (p *sigParser) typ() (Type, error) {
	start := p.pos
	t, none, err := p.union()
	if err != nil {
		return Type{}, err
	}
	if none && t.Kind == KindString && t.Name == "None" {
		p.pos = start
		return Type{}, p.errorf("None alone is not a type")
	}
	return t, nil
}

// union parses "A | B | None" (B may be a parenthesised union); none
// reports a None alternative, which makes the result Optional.
func (p *sigParser) union() (Type, bool, error) {
	var alts []Type
	none := false
	for {
		p.skipSpace()
		if p.peek() == '(' {
			p.pos++
			t, n, err := p.union()
			if err != nil {
				return Type{}, false, err
			}
			if err := p.expect(')'); err != nil {
				return Type{}, false, err
			}
			none = none || n
			if !(n && t.Kind == KindString && t.Name == "None") {
				alts = append(alts, t)
			}
		} else {
			t, isNone, err := p.noneOr(p.primary)
			if err != nil {
				return Type{}, false, err
			}
			if isNone {
				none = true
			} else {
				alts = append(alts, t)
			}
		}
		p.skipSpace()
		if p.peek() != '|' {
			break
		}
		p.pos++
	}
	if len(alts) == 0 {
		// Only None: the caller decides whether that is allowed.
		return Type{Kind: KindString, Name: "None", Optional: true}, true, nil
	}
	return optionalUnion(alts, none), none, nil
}

// noneOr reads the name None, or else one type with parse.
func (p *sigParser) noneOr(parse func() (Type, error)) (t Type, isNone bool, err error) {
	start := p.pos
	if p.ident() == "None" {
		return Type{}, true, nil
	}
	p.pos = start
	t, err = parse()
	return t, false, err
}

// optionalUnion is the union of alts, Optional when a None was among them.
func optionalUnion(alts []Type, none bool) Type {
	t := Union(alts...)
	if none {
		t.Optional = true
	}
	return t
}

// typeList parses "[A, B, ...]" after a generic's name.
func (p *sigParser) typeList() ([]Type, error) {
	if err := p.expect('['); err != nil {
		return nil, err
	}
	var ts []Type
	for {
		t, err := p.typ()
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
		p.skipSpace()
		if p.peek() == ',' {
			p.pos++
			continue
		}
		if err := p.expect(']'); err != nil {
			return nil, err
		}
		return ts, nil
	}
}

func (p *sigParser) primary() (Type, error) {
	p.skipSpace()
	start := p.pos
	name := p.ident()
	switch name {
	case "":
		return Type{}, p.errorf("expected a type")
	case "Optional":
		if err := p.expect('['); err != nil {
			return Type{}, err
		}
		t, err := p.typ()
		if err != nil {
			return Type{}, err
		}
		if err := p.expect(']'); err != nil {
			return Type{}, err
		}
		return OptionalOf(t), nil
	case "Union":
		ts, err := p.unionArgs()
		if err != nil {
			return Type{}, err
		}
		return ts, nil
	case "tuple", "Tuple":
		p.skipSpace()
		if p.peek() != '[' {
			return List(String), nil
		}
		open := p.pos
		p.pos++
		p.skipSpace()
		if strings.HasPrefix(p.in[p.pos:], "()") {
			p.pos += 2
			if err := p.expect(']'); err != nil {
				return Type{}, err
			}
			return Tuple(), nil
		}
		elem, err := p.typ()
		if err != nil {
			return Type{}, err
		}
		p.skipSpace()
		if p.peek() == ',' {
			p.pos++
			p.skipSpace()
			if strings.HasPrefix(p.in[p.pos:], "...") {
				// tuple[int, ...] is a list of any length.
				p.pos += 3
				if err := p.expect(']'); err != nil {
					return Type{}, err
				}
				return List(elem), nil
			}
		}
		p.pos = open
		items, err := p.typeList()
		if err != nil {
			return Type{}, err
		}
		for _, it := range items {
			if it.Kind == KindHistory {
				return Type{}, p.errorf("a tuple cannot hold History values")
			}
		}
		return Tuple(items...), nil
	case "str", "string":
		return String, nil
	case "int":
		return Int, nil
	case "float":
		return Float, nil
	case "bool":
		return Bool, nil
	case "History":
		return HistoryType, nil
	case "Any", "Dict", "dict":
		return p.dict(name)
	case "list", "List":
		if err := p.expect('['); err != nil {
			return Type{}, err
		}
		elem, err := p.typ()
		if err != nil {
			return Type{}, err
		}
		if elem.Kind == KindHistory {
			return Type{}, p.errorf("a list cannot hold History values")
		}
		if err := p.expect(']'); err != nil {
			return Type{}, err
		}
		return List(elem), nil
	case "Literal":
		return p.literal()
	}
	p.pos = start
	return Type{}, p.errorf("unknown type %q (want str, int, float, bool, list[T], dict, tuple[...], Optional[T], Union[...], Literal[...] or History)", name)
}

// unionArgs parses Union's "[A, B, None]".
func (p *sigParser) unionArgs() (Type, error) {
	if err := p.expect('['); err != nil {
		return Type{}, err
	}
	var alts []Type
	none := false
	for {
		p.skipSpace()
		t, isNone, err := p.noneOr(p.typ)
		switch {
		case err != nil:
			return Type{}, err
		case isNone:
			none = true
		case t.Kind == KindHistory:
			return Type{}, p.errorf("a union cannot hold History values")
		default:
			alts = append(alts, t)
		}
		p.skipSpace()
		if p.peek() == ',' {
			p.pos++
			continue
		}
		if err := p.expect(']'); err != nil {
			return Type{}, err
		}
		break
	}
	if len(alts) == 0 {
		return Type{}, p.errorf("a union needs a type other than None")
	}
	return optionalUnion(alts, none), nil
}

func (p *sigParser) expect(c byte) error {
	p.skipSpace()
	if p.peek() != c {
		if p.pos >= len(p.in) {
			return p.errorf("expected %q, got the end of the string", c)
		}
		return p.errorf("expected %q, got %q", c, p.rest())
	}
	p.pos++
	return nil
}

// dict accepts dict and dict[str, Any]; the key and value types are not
// checked beyond being type names, as JSON object keys are strings anyway.
func (p *sigParser) dict(name string) (Type, error) {
	if name == "Any" {
		return Type{Kind: KindObject, Name: "Any"}, nil
	}
	p.skipSpace()
	if p.peek() != '[' {
		return Type{Kind: KindObject, Name: "dict"}, nil
	}
	p.pos++
	if _, err := p.typ(); err != nil {
		return Type{}, err
	}
	if err := p.expect(','); err != nil {
		return Type{}, err
	}
	if _, err := p.typ(); err != nil {
		return Type{}, err
	}
	if err := p.expect(']'); err != nil {
		return Type{}, err
	}
	return Dict, nil
}

func (p *sigParser) literal() (Type, error) {
	if err := p.expect('['); err != nil {
		return Type{}, err
	}
	var opts []string
	for {
		p.skipSpace()
		q := p.peek()
		if q != '\'' && q != '"' {
			return Type{}, p.errorf("expected a quoted Literal option")
		}
		start := p.pos
		p.pos++
		var b strings.Builder
		for {
			if p.pos >= len(p.in) {
				p.pos = start
				return Type{}, p.errorf("unterminated string")
			}
			c := p.in[p.pos]
			if c == '\\' && p.pos+1 < len(p.in) {
				b.WriteByte(p.in[p.pos+1])
				p.pos += 2
				continue
			}
			p.pos++
			if c == q {
				break
			}
			b.WriteByte(c)
		}
		opts = append(opts, b.String())
		p.skipSpace()
		if p.peek() == ',' {
			p.pos++
			continue
		}
		if err := p.expect(']'); err != nil {
			return Type{}, err
		}
		return Enum(opts...), nil
	}
}
