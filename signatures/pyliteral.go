package signatures

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxLiteralDepth bounds the nesting of lists, tuples and dicts that
// parsePyLiteral accepts, so a hostile reply cannot exhaust the stack.
const maxLiteralDepth = 512

// errLiteral is the cause of every parsePyLiteral failure.
var errLiteral = errors.New("not a Python literal")

// parsePyLiteral reads a Python literal as the models that answer "a valid
// Python list/dict" write it, the way DSPy accepts it through json_repair and
// ast.literal_eval (dspy/adapters/utils.py, parse_value): strings in single,
// double or triple quotes (with r/u/b prefixes and adjacent strings joined),
// True/False/None (and JSON's true/false/null), ints and floats with
// underscores, signs and 0x/0o/0b prefixes, lists, tuples and sets (as
// lists), and dicts whose keys may be strings, numbers or booleans (as their
// text). Trailing commas are allowed. It is a superset of JSON; values come
// back as the JSON decoder's plain forms: string, int, float64, bool, nil,
// []any and map[string]any.
//
// Unlike json_repair it does not invent missing brackets or quotes: a
// truncated reply is an error, and Predict's corrected retry asks again.
func parsePyLiteral(s string) (any, error) {
	p := pyParser{in: s}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.in) {
		return nil, p.errorf("unexpected %q after the value", p.rest())
	}
	return v, nil
}

type pyParser struct {
	in  string
	pos int
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", errLiteral, p.pos, fmt.Sprintf(format, args...))
}

func (p *pyParser) rest() string {
	r := p.in[p.pos:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

// space skips whitespace and Python comments.
func (p *pyParser) space() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.pos++
		case '#':
			for p.pos < len(p.in) && p.in[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxLiteralDepth {
		return nil, p.errorf("nested deeper than %d", maxLiteralDepth)
	}
	if p.pos >= len(p.in) {
		return nil, p.errorf("expected a value, got the end of the text")
	}
	switch c := p.in[p.pos]; {
	case c == '[':
		p.pos++
		return p.sequence(']', depth)
	case c == '(':
		p.pos++
		return p.sequence(')', depth)
	case c == '{':
		p.pos++
		return p.dict(depth)
	case c == '\'' || c == '"':
		return p.strings()
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	case isWordByte(c):
		start := p.pos
		for p.pos < len(p.in) && isWordByte(p.in[p.pos]) {
			p.pos++
		}
		word := p.in[start:p.pos]
		switch word {
		case "True", "true":
			return true, nil
		case "False", "false":
			return false, nil
		case "None", "null":
			return nil, nil
		}
		if p.pos < len(p.in) && (p.in[p.pos] == '\'' || p.in[p.pos] == '"') && isStringPrefix(word) {
			p.pos = start
			return p.strings()
		}
		p.pos = start
		return nil, p.errorf("unexpected name %q", word)
	default:
		return nil, p.errorf("unexpected %q", p.rest())
	}
}

func isStringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "br", "rb":
		return true
	}
	return false
}

// sequence reads the items of a list or tuple up to close. A one-item tuple
// without its comma, "(1)", is just the parenthesised value, as in Python.
func (p *pyParser) sequence(close byte, depth int) (any, error) {
	items := []any{}
	comma := false
	for {
		p.space()
		if p.pos >= len(p.in) {
			return nil, p.errorf("expected %q, got the end of the text", close)
		}
		if p.in[p.pos] == close {
			p.pos++
			if close == ')' && len(items) == 1 && !comma {
				return items[0], nil
			}
			return items, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		p.space()
		comma = false
		if p.pos < len(p.in) && p.in[p.pos] == ',' {
			p.pos++
			comma = true
			continue
		}
		if p.pos >= len(p.in) || p.in[p.pos] != close {
			return nil, p.errorf("expected \",\" or %q", close)
		}
	}
}

// dict reads a dict or, when its first item has no colon, a set (as a list).
func (p *pyParser) dict(depth int) (any, error) {
	m := map[string]any{}
	var set []any
	for i := 0; ; i++ {
		p.space()
		if p.pos >= len(p.in) {
			return nil, p.errorf("expected \"}\", got the end of the text")
		}
		if p.in[p.pos] == '}' {
			p.pos++
			if set != nil {
				return set, nil
			}
			return m, nil
		}
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.space()
		isSet := set != nil || (i == 0 && p.pos < len(p.in) && p.in[p.pos] != ':')
		if isSet {
			set = append(set, k)
		} else {
			if p.pos >= len(p.in) || p.in[p.pos] != ':' {
				return nil, p.errorf("expected \":\" after a dict key")
			}
			p.pos++
			p.space()
			key, err := literalKey(k)
			if err != nil {
				return nil, p.errorf("%v", err)
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		p.space()
		if p.pos < len(p.in) && p.in[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos >= len(p.in) || p.in[p.pos] != '}' {
			return nil, p.errorf("expected \",\" or \"}\"")
		}
	}
}

// literalKey turns a hashable key into the string key of a JSON object.
func literalKey(k any) (string, error) {
	switch x := k.(type) {
	case string:
		return x, nil
	case nil, bool, int, float64:
		return formatValue(x), nil
	}
	return "", fmt.Errorf("a %T cannot be a dict key", k)
}

// strings reads one or more adjacent string literals and joins them.
func (p *pyParser) strings() (any, error) {
	if s, ok := p.plainString(); ok {
		return s, nil
	}
	var b strings.Builder
	n := 0
	for {
		start := p.pos
		raw := false
		for p.pos < len(p.in) && isWordByte(p.in[p.pos]) {
			if p.in[p.pos] == 'r' || p.in[p.pos] == 'R' {
				raw = true
			}
			p.pos++
		}
		if p.pos >= len(p.in) || (p.in[p.pos] != '\'' && p.in[p.pos] != '"') || (p.pos > start && !isStringPrefix(p.in[start:p.pos])) {
			p.pos = start
			break
		}
		if err := p.str(&b, raw); err != nil {
			return nil, err
		}
		n++
		save := p.pos
		p.space()
		if p.pos >= len(p.in) || !(p.in[p.pos] == '\'' || p.in[p.pos] == '"' || isWordByte(p.in[p.pos])) {
			p.pos = save
			break
		}
	}
	if n == 0 {
		return nil, p.errorf("expected a string")
	}
	return b.String(), nil
}

// plainString is the fast path of strings: one single-quoted or
// double-quoted string without escapes or invalid UTF-8, not followed by
// another string, is a slice of the input.
func (p *pyParser) plainString() (string, bool) {
	q := p.in[p.pos]
	if q != '\'' && q != '"' || strings.HasPrefix(p.in[p.pos:], strings.Repeat(string(q), 3)) {
		return "", false
	}
	end := p.pos + 1
	for end < len(p.in) {
		c := p.in[end]
		if c == q {
			break
		}
		if c == '\\' || c == '\n' || c >= utf8.RuneSelf {
			if c < utf8.RuneSelf {
				return "", false
			}
			r, n := utf8.DecodeRuneInString(p.in[end:])
			if r == utf8.RuneError && n == 1 {
				return "", false
			}
			end += n
			continue
		}
		end++
	}
	if end >= len(p.in) {
		return "", false
	}
	// Adjacent strings are joined: leave those to the general path.
	next := end + 1
	for next < len(p.in) && (p.in[next] == ' ' || p.in[next] == '\t' || p.in[next] == '\n' || p.in[next] == '\r') {
		next++
	}
	if next < len(p.in) && (p.in[next] == '\'' || p.in[next] == '"' || isWordByte(p.in[next])) {
		return "", false
	}
	s := p.in[p.pos+1 : end]
	p.pos = end + 1
	return s, true
}

// str reads one quoted string (the quote is at p.pos) into b.
func (p *pyParser) str(b *strings.Builder, raw bool) error {
	q := p.in[p.pos]
	start := p.pos
	delim := p.in[p.pos : p.pos+1]
	if strings.HasPrefix(p.in[p.pos:], strings.Repeat(delim, 3)) {
		delim = strings.Repeat(delim, 3)
	}
	p.pos += len(delim)
	for {
		if p.pos >= len(p.in) {
			p.pos = start
			return p.errorf("unterminated string")
		}
		if strings.HasPrefix(p.in[p.pos:], delim) {
			p.pos += len(delim)
			return nil
		}
		c := p.in[p.pos]
		switch {
		case c == '\n' && len(delim) == 1:
			return p.errorf("newline in a string")
		case c == '\\' && raw:
			// A raw string keeps the backslash, but an escaped quote does
			// not end it.
			b.WriteByte(c)
			p.pos++
			if p.pos < len(p.in) && (p.in[p.pos] == q || p.in[p.pos] == '\\') {
				b.WriteByte(p.in[p.pos])
				p.pos++
			}
		case c == '\\':
			if err := p.escape(b); err != nil {
				return err
			}
		default:
			r, n := utf8.DecodeRuneInString(p.in[p.pos:])
			if r == utf8.RuneError && n == 1 {
				// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
				b.WriteRune(r)
			} else {
				b.WriteString(p.in[p.pos : p.pos+n])
			}
			p.pos += n
		}
	}
}

// escape reads a backslash escape, Python's and JSON's: an unknown escape
// keeps its backslash, as Python does.
func (p *pyParser) escape(b *strings.Builder) error {
	p.pos++
	if p.pos >= len(p.in) {
		return p.errorf("unterminated string")
	}
	c := p.in[p.pos]
	p.pos++
	switch c {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'v':
		b.WriteByte('\v')
	case 'a':
		b.WriteByte('\a')
	case '0':
		b.WriteByte(0)
	case '\\', '\'', '"', '/':
		// "\/" is JSON's escaped slash; Python would keep the backslash,
		// but the parser is first of all a superset of JSON.
		b.WriteByte(c)
	case '\n':
		// A line continuation.
	case 'x', 'u', 'U':
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		if p.pos+n > len(p.in) {
			return p.errorf("truncated \\%c escape", c)
		}
		r, err := strconv.ParseUint(p.in[p.pos:p.pos+n], 16, 32)
		if err != nil {
			return p.errorf("bad \\%c escape", c)
		}
		p.pos += n
		if c == 'u' && r >= 0xD800 && r < 0xDC00 && strings.HasPrefix(p.in[p.pos:], `\u`) && p.pos+6 <= len(p.in) {
			// A JSON surrogate pair.
			if lo, err := strconv.ParseUint(p.in[p.pos+2:p.pos+6], 16, 32); err == nil && lo >= 0xDC00 && lo < 0xE000 {
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				p.pos += 6
			}
		}
		if r > utf8.MaxRune {
			return p.errorf("bad \\%c escape", c)
		}
		b.WriteRune(rune(r))
	default:
		b.WriteByte('\\')
		b.WriteByte(c)
	}
	return nil
}

// number reads an int or a float; "1_000" and "1e3" are numbers, as in
// Python; a whole float such as 2.0 stays a float.
func (p *pyParser) number() (any, error) {
	start := p.pos
	if c := p.in[p.pos]; c == '-' || c == '+' {
		p.pos++
		p.space()
	}
	sign := strings.TrimSpace(p.in[start:p.pos])
	digits := p.pos
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		if isWordByte(c) || c == '.' || ((c == '-' || c == '+') && (p.in[p.pos-1] == 'e' || p.in[p.pos-1] == 'E') && !isHexLiteral(p.in[digits:p.pos])) {
			p.pos++
			continue
		}
		break
	}
	text := p.in[digits:p.pos]
	if text == "" || !(isDigit(text[0]) || text[0] == '.' && len(text) > 1 && isDigit(text[1])) {
		// Not "-inf", "+Infinity" or "-nan", which strconv would read.
		return nil, p.errorf("expected a number, got %q", text)
	}
	if sign == "+" {
		sign = ""
	}
	if !strings.ContainsAny(text, ".eE") || isHexLiteral(text) {
		if len(text) > 1 && text[0] == '0' && text[1] >= '0' && text[1] <= '9' && strings.Trim(text, "0_") != "" {
			// Python rejects 0123; JSON does too.
			return nil, p.errorf("bad number %q", text)
		}
		n, err := strconv.ParseInt(sign+text, 0, 64)
		if err == nil {
			return int(n), nil
		}
		if !isHexLiteral(text) && validUnderscores(text) {
			// Beyond int64: a float, as encoding/json would give.
			return p.float(sign, text)
		}
		return nil, p.errorf("bad number %q", text)
	}
	if !validUnderscores(text) {
		return nil, p.errorf("bad number %q", text)
	}
	return p.float(sign, text)
}

// float reads a decimal number as float64; one beyond float64's range is
// kept as its text, as the JSON decoder's values (jsonPlain) keep it.
func (p *pyParser) float(sign, text string) (any, error) {
	clean := sign + strings.ReplaceAll(text, "_", "")
	f, err := strconv.ParseFloat(clean, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return clean, nil
		}
		return nil, p.errorf("bad number %q", text)
	}
	return f, nil
}

func isHexLiteral(s string) bool {
	return len(s) > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X' || s[1] == 'o' || s[1] == 'O' || s[1] == 'b' || s[1] == 'B')
}

// validUnderscores reports whether every underscore of a decimal literal
// sits between two digits, as Python requires.
func validUnderscores(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			continue
		}
		if i == 0 || i == len(s)-1 || !isDigit(s[i-1]) || !isDigit(s[i+1]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
