package offline

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// The exact strings of the shared prompt format that this model reads.
const (
	respondPhrase = "Respond with the corresponding output fields"
	noteInt       = "the value you produce must be a single int value"
	noteFloat     = "the value you produce must be a single float value"
	noteBool      = "the value you produce must be True or False"
	noteEnum      = "the value you produce must exactly match (no extra characters) one of: "
	noteSchema    = "the value you produce must adhere to the JSON schema: "
	completedName = "completed"
)

var (
	// markerRe finds a field marker and the optional type hint after it in
	// the final user message.
	markerRe = regexp.MustCompile("`\\[\\[ ## (\\w+) ## \\]\\]`(?: \\(must be formatted as a valid Python (.*?)\\),)?")
	// noteRe finds an output field's placeholder and type note in the system
	// message's structure section.
	noteRe = regexp.MustCompile(`(?m)^\{(\w+)\} {8}# note: (.*)$`)
	// literalRe pulls the options out of a Literal['a', 'b'] hint.
	literalRe = regexp.MustCompile(`'((?:[^'\\]|\\.)*)'`)
)

// maxNoted bounds the system messages whose type notes a Model remembers.
const maxNoted = 1024

// noteMemo maps a system message to its type notes (a map[string]string, never
// modified). A program sends the same system message on every call, and scanning it
// with noteRe was the most costly step of a structured reply.
type noteMemo struct {
	notes sync.Map
	count atomic.Int64
	// fields maps a fieldsKey to the output fields it asks for ([]field, never
	// modified): a program's final message ends with the same request on every call,
	// and reading it with markerRe allocated on every reply. At most maxNoted.
	fields      sync.Map
	fieldsCount atomic.Int64
}

// fieldsKey is what outputFields reads: the system message and the final message
// from its request for the output fields on.
type fieldsKey struct{ system, request string }

// of returns the type note of each output field in the system message, by field name
// (the first note of a name wins). The result must not be modified.
func (c *noteMemo) of(system string) map[string]string {
	if v, ok := c.notes.Load(system); ok {
		return v.(map[string]string)
	}
	notes := map[string]string{}
	for _, m := range noteRe.FindAllStringSubmatch(system, -1) {
		if _, seen := notes[m[1]]; !seen {
			notes[m[1]] = m[2]
		}
	}
	if c.count.Load() < maxNoted {
		if _, loaded := c.notes.LoadOrStore(system, notes); !loaded {
			c.count.Add(1)
		}
	}
	return notes
}

type kind int

const (
	kindString kind = iota
	kindInt
	kindFloat
	kindBool
	kindEnum
	kindJSON
)

// field is an output field the prompt asks for.
type field struct {
	name    string
	kind    kind
	options []string       // kindEnum
	schema  map[string]any // kindJSON; nil means "any JSON value"
	hint    string         // the Python type hint, for kindJSON without schema
}

// outputFields reads the requested output fields, in order, from the final
// user message (remembered in notes; the result must not be modified); their types come from the system message's type notes (notes
// reads them), or from the final message's hints when the system message has
// none. It returns nil for a plain chat turn.
func outputFields(system, last string, notes *noteMemo) []field {
	i := strings.Index(last, respondPhrase)
	if i < 0 {
		return nil
	}
	key := fieldsKey{system, last[i:]}
	if v, ok := notes.fields.Load(key); ok {
		return v.([]field)
	}
	noted := notes.of(system)
	var fields []field
	for _, m := range markerRe.FindAllStringSubmatch(key.request, -1) {
		name, hint := m[1], m[2]
		if name == completedName || slices.ContainsFunc(fields, func(f field) bool { return f.name == name }) {
			continue
		}
		f, ok := fromNote(name, noted[name])
		if !ok {
			f = fromHint(name, hint)
		}
		fields = append(fields, f)
	}
	if notes.fieldsCount.Load() < maxNoted {
		// A copy of the request alone: key.request shares the final message's text.
		key.request = strings.Clone(key.request)
		if _, loaded := notes.fields.LoadOrStore(key, fields); !loaded {
			notes.fieldsCount.Add(1)
		}
	}
	return fields
}

func fromNote(name, note string) (field, bool) {
	f := field{name: name}
	switch {
	case note == noteInt:
		f.kind = kindInt
	case note == noteFloat:
		f.kind = kindFloat
	case note == noteBool:
		f.kind = kindBool
	case strings.HasPrefix(note, noteEnum):
		f.kind = kindEnum
		f.options = strings.Split(strings.TrimPrefix(note, noteEnum), "; ")
	case strings.HasPrefix(note, noteSchema):
		f.kind = kindJSON
		if err := json.Unmarshal([]byte(strings.TrimPrefix(note, noteSchema)), &f.schema); err != nil {
			return f, false
		}
	default:
		return f, false
	}
	return f, true
}

func fromHint(name, hint string) field {
	f := field{name: name, hint: hint}
	switch {
	case hint == "":
		f.kind = kindString
	case hint == "int":
		f.kind = kindInt
	case hint == "float":
		f.kind = kindFloat
	case hint == "bool":
		f.kind = kindBool
	case strings.HasPrefix(hint, "Literal["):
		f.kind = kindEnum
		for _, m := range literalRe.FindAllStringSubmatch(hint, -1) {
			f.options = append(f.options, m[1])
		}
		if len(f.options) == 0 {
			f.kind = kindString
		}
	default:
		f.kind = kindJSON
	}
	return f
}

// value returns the field's deterministic value, as it would appear in a
// JSON object. A text field says what it is and quotes the start of the
// first input (quote, empty when there is none), so a reader sees the request
// got through.
func (f field) value(d digest, quote string) any {
	switch f.kind {
	case kindInt:
		return d.number(f.name, 100)
	case kindFloat:
		return float64(d.number(f.name, 101)) / 100
	case kindBool:
		return true
	case kindEnum:
		if slices.Contains(f.options, "finish") {
			return "finish"
		}
		return f.options[0]
	case kindJSON:
		if f.schema != nil {
			return minimalValue(f.schema, f.schema)
		}
		if strings.HasPrefix(f.hint, "list") {
			return []any{}
		}
		return map[string]any{}
	default:
		if quote != "" {
			return fmt.Sprintf("This %s comes from kowai's offline model, not a real language model. It received %q (input digest %s).", f.name, quote, d.short())
		}
		return fmt.Sprintf("This %s comes from kowai's offline model (input digest %s).", f.name, d.short())
	}
}

// firstInput returns the start of the first input block of a rendered user
// message, on one line and at most 80 characters, or "".
func firstInput(last string) string {
	_, rest, ok := strings.Cut(last, " ## ]]\n")
	if !ok || !strings.HasPrefix(last, "[[ ## ") {
		return ""
	}
	value, _, _ := strings.Cut(rest, "\n\n[[ ## ")
	value, _, _ = strings.Cut(value, "\n\nRespond with the corresponding output fields")
	// The quote lands inside a reply of markers; it must never form one.
	value = strings.ReplaceAll(strings.Join(strings.Fields(value), " "), "[[", "[ [")
	if utf8.RuneCountInString(value) > 80 {
		value = string([]rune(value)[:80]) + "..."
	}
	return value
}

// text renders the value the way a marker block carries it.
func (f field) text(d digest, quote string) string {
	switch v := f.value(d, quote).(type) {
	case string:
		return v
	case bool:
		if v {
			return "True"
		}
		return "False"
	case float64:
		if f.kind == kindFloat {
			return strconv.FormatFloat(v, 'f', 2, 64)
		}
	}
	b, _ := json.Marshal(f.value(d, quote))
	return string(b)
}

// structuredReply writes every field in order and the completed marker, or
// a JSON object of the fields in JSON mode.
func structuredReply(fields []field, d digest, quote string, jsonMode bool) string {
	if jsonMode {
		var b strings.Builder
		b.WriteByte('{')
		for i, f := range fields {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(f.name)
			v, _ := json.Marshal(f.value(d, quote))
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
		return b.String()
	}
	// The reply is built in one allocation of its final size, without fmt.
	const completed = "[[ ## completed ## ]]"
	var textsBuf [4]string
	texts, n := textsBuf[:0], len(completed)
	for _, f := range fields {
		t := f.text(d, quote)
		texts = append(texts, t)
		n += len("[[ ## ") + len(f.name) + len(" ## ]]\n") + len(t) + len("\n\n")
	}
	var b strings.Builder
	b.Grow(n)
	for i, f := range fields {
		b.WriteString("[[ ## ")
		b.WriteString(f.name)
		b.WriteString(" ## ]]\n")
		b.WriteString(texts[i])
		b.WriteString("\n\n")
	}
	b.WriteString(completed)
	return b.String()
}
