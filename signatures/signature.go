package signatures

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors about signatures and their fields.
var (
	// ErrSyntax is wrapped by every *SyntaxError from Parse.
	ErrSyntax = errors.New("signatures: invalid signature string")
	// ErrInvalidSignature means a signature's fields break a rule (duplicate
	// or empty names, no outputs, a history output).
	ErrInvalidSignature = errors.New("signatures: invalid signature")
)

// Role says whether a field is given to the model or produced by it.
type Role uint8

// The two roles of a field.
const (
	// Input fields are given to the model.
	Input Role = iota
	// Output fields are produced by the model.
	Output
)

// Field is one named, typed slot of a signature.
type Field struct {
	// Name is the field's identifier, used in the [[ ## name ## ]] markers.
	Name string `json:"name"`
	// Type is the field's type; the zero value is a string.
	Type Type `json:"-"`
	// Desc describes the field to the model.
	Desc string `json:"description,omitempty"`
	// Prefix is DSPy's display prefix ("Question:"); it is kept in saved
	// state for compatibility and inferred from the name when empty.
	Prefix string `json:"prefix,omitempty"`
	// Default, when not nil, is an input's value when the caller leaves it
	// out, and an output's value when the reply lacks it (DSPy's
	// InputField(default=...) and OutputField(default=...)).
	Default any `json:"default,omitempty"`
}

// Signature is an immutable description of a task: ordered input fields,
// ordered output fields and instructions. The zero value is not useful;
// build one with Parse, New or SignatureFor.
type Signature struct {
	inputs       []Field
	outputs      []Field
	instructions string
}

// New builds a signature from fields. Empty instructions become DSPy's
// default, fixed now: "Given the fields `a`, `b`, produce the fields `c`."
func New(inputs, outputs []Field, instructions string) (Signature, error) {
	s := Signature{inputs: cloneFields(inputs), outputs: cloneFields(outputs)}
	for _, fs := range [][]Field{s.inputs, s.outputs} {
		for i := range fs {
			if fs[i].Prefix == "" {
				fs[i].Prefix = inferPrefix(fs[i].Name)
			}
		}
	}
	if err := s.validate(); err != nil {
		return Signature{}, err
	}
	if strings.TrimSpace(instructions) == "" {
		instructions = s.defaultInstructions()
	}
	s.instructions = instructions
	return s, nil
}

// MustParse is Parse that panics on error, for signatures written in source.
func MustParse(s string) Signature {
	sig, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sig
}

func cloneFields(fs []Field) []Field { return slices.Clone(fs) }

func (s Signature) validate() error {
	if len(s.outputs) == 0 {
		return fmt.Errorf("%w: no output fields", ErrInvalidSignature)
	}
	seen := map[string]bool{}
	for _, f := range s.Fields() {
		if !validName(f.Name) {
			return fmt.Errorf("%w: field name %q is not an identifier", ErrInvalidSignature, f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("%w: duplicate field %q", ErrInvalidSignature, f.Name)
		}
		seen[f.Name] = true
	}
	for _, f := range s.outputs {
		if f.Type.Kind == KindHistory {
			return fmt.Errorf("%w: output %q cannot be a history", ErrInvalidSignature, f.Name)
		}
	}
	return nil
}

func validName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}

func (s Signature) defaultInstructions() string {
	quote := func(fs []Field) string {
		names := make([]string, len(fs))
		for i, f := range fs {
			names[i] = "`" + f.Name + "`"
		}
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("Given the fields %s, produce the fields %s.", quote(s.inputs), quote(s.outputs))
}

// The steps of DSPy's infer_prefix (dspy/signatures/signature.py).
var (
	prefixCamel    = regexp.MustCompile(`(.)([A-Z][a-z]+)`)
	prefixCaps     = regexp.MustCompile(`([a-z0-9])([A-Z])`)
	prefixLetterNo = regexp.MustCompile(`([a-zA-Z])(\d)`)
	prefixNoLetter = regexp.MustCompile(`(\d)([a-zA-Z])`)
)

// inferPrefix is DSPy's infer_prefix plus ":": words split at underscores,
// camelCase humps and digits, acronyms kept ("URLAddress" -> "URL
// Address:", "input1" -> "Input 1:", "next_thought" -> "Next Thought:").
func inferPrefix(name string) string {
	s := prefixCamel.ReplaceAllString(name, "${1}_${2}")
	s = prefixCaps.ReplaceAllString(s, "${1}_${2}")
	s = prefixLetterNo.ReplaceAllString(s, "${1}_${2}")
	s = prefixNoLetter.ReplaceAllString(s, "${1}_${2}")
	words := strings.Split(s, "_")
	for i, w := range words {
		if !isUpperWord(w) {
			words[i] = capitalize(w)
		}
	}
	return strings.Join(words, " ") + ":"
}

// isUpperWord is Python's str.isupper: some cased letter, none lower case.
func isUpperWord(w string) bool {
	cased := false
	for _, r := range w {
		if unicode.IsLower(r) {
			return false
		}
		cased = cased || unicode.IsUpper(r)
	}
	return cased
}

// capitalize is Python's str.capitalize: the first letter upper case, the
// rest lower case.
func capitalize(w string) string {
	if w == "" {
		return w
	}
	r, n := utf8.DecodeRuneInString(w)
	return string(unicode.ToUpper(r)) + strings.ToLower(w[n:])
}

// Inputs returns a copy of the input fields in order.
func (s Signature) Inputs() []Field { return cloneFields(s.inputs) }

// Outputs returns a copy of the output fields in order.
func (s Signature) Outputs() []Field { return cloneFields(s.outputs) }

// Fields returns the inputs followed by the outputs.
func (s Signature) Fields() []Field { return append(cloneFields(s.inputs), s.outputs...) }

// Instructions returns the task instructions.
func (s Signature) Instructions() string { return s.instructions }

// Field looks a field up by name.
func (s Signature) Field(name string) (Field, Role, bool) {
	for _, f := range s.inputs {
		if f.Name == name {
			return f, Input, true
		}
	}
	for _, f := range s.outputs {
		if f.Name == name {
			return f, Output, true
		}
	}
	return Field{}, 0, false
}

// WithInstructions returns a copy with new instructions.
func (s Signature) WithInstructions(instructions string) Signature {
	s.inputs, s.outputs = cloneFields(s.inputs), cloneFields(s.outputs)
	s.instructions = instructions
	return s
}

// Prepend returns a copy with f inserted first among the fields of role.
// The instructions are kept, as in DSPy.
func (s Signature) Prepend(role Role, f Field) (Signature, error) { return s.insert(role, 0, f) }

// Append returns a copy with f added last among the fields of role.
func (s Signature) Append(role Role, f Field) (Signature, error) { return s.insert(role, -1, f) }

func (s Signature) insert(role Role, at int, f Field) (Signature, error) {
	if f.Prefix == "" {
		f.Prefix = inferPrefix(f.Name)
	}
	in, out := cloneFields(s.inputs), cloneFields(s.outputs)
	target := &in
	if role == Output {
		target = &out
	}
	if at < 0 {
		*target = append(*target, f)
	} else {
		*target = slices.Insert(*target, at, f)
	}
	n := Signature{inputs: in, outputs: out, instructions: s.instructions}
	if err := n.validate(); err != nil {
		return Signature{}, err
	}
	return n, nil
}

// AppendInstructions returns a copy whose instructions are the current
// ones and extra, joined by a blank line (DSPy's append_instructions).
func (s Signature) AppendInstructions(extra string) Signature {
	return s.WithInstructions(s.instructions + "\n\n" + extra)
}

// Insert returns a copy with f at index at among the fields of role, as
// DSPy's insert: a negative index counts from the end, -1 appending. The
// instructions are kept.
func (s Signature) Insert(at int, role Role, f Field) (Signature, error) {
	n := len(s.inputs)
	if role == Output {
		n = len(s.outputs)
	}
	if at < 0 {
		at += n + 1
	}
	if at < 0 || at > n {
		return Signature{}, fmt.Errorf("%w: index %d out of range for %d %s fields", ErrInvalidSignature, at, n, roleName(role))
	}
	if at == n {
		return s.insert(role, -1, f)
	}
	return s.insert(role, at, f)
}

// FieldUpdate holds the attributes WithUpdatedField changes; nil leaves
// one as it is.
type FieldUpdate struct {
	// Type, Desc and Prefix replace the field's when not nil.
	Type   *Type
	Desc   *string
	Prefix *string
}

// WithUpdatedField returns a copy whose named field has the attributes of
// u (DSPy's with_updated_fields). The receiver is unchanged.
func (s Signature) WithUpdatedField(name string, u FieldUpdate) (Signature, error) {
	in, out := cloneFields(s.inputs), cloneFields(s.outputs)
	for _, fs := range [][]Field{in, out} {
		for i := range fs {
			if fs[i].Name != name {
				continue
			}
			if u.Type != nil {
				fs[i].Type = *u.Type
			}
			if u.Desc != nil {
				fs[i].Desc = *u.Desc
			}
			if u.Prefix != nil {
				fs[i].Prefix = *u.Prefix
			}
			n := Signature{inputs: in, outputs: out, instructions: s.instructions}
			if err := n.validate(); err != nil {
				return Signature{}, err
			}
			return n, nil
		}
	}
	return Signature{}, fmt.Errorf("%w: no field %q", ErrInvalidSignature, name)
}

// Delete returns a copy without the named field; it is a no-op when the
// field does not exist.
func (s Signature) Delete(name string) Signature {
	keep := func(f Field) bool { return f.Name == name }
	return Signature{
		inputs:       slices.DeleteFunc(cloneFields(s.inputs), keep),
		outputs:      slices.DeleteFunc(cloneFields(s.outputs), keep),
		instructions: s.instructions,
	}
}

// String renders the signature in its string form, with types other than
// str spelled out: "question, context: list[str] -> answer: int".
func (s Signature) String() string {
	part := func(fs []Field) string {
		ps := make([]string, len(fs))
		for i, f := range fs {
			ps[i] = f.Name
			if !f.Type.isStr() && f.Type.Kind != KindHistory {
				ps[i] += ": " + f.Type.String()
			}
		}
		return strings.Join(ps, ", ")
	}
	return part(s.inputs) + " -> " + part(s.outputs)
}

// Equal reports whether two signatures have the same fields (names, types,
// descriptions, prefixes) and instructions.
func (s Signature) Equal(o Signature) bool {
	eq := func(a, b []Field) bool {
		return slices.EqualFunc(a, b, func(x, y Field) bool {
			return x.Name == y.Name && x.Desc == y.Desc && x.Prefix == y.Prefix && x.Type.String() == y.Type.String() &&
				string(x.Type.Schema) == string(y.Type.Schema)
		})
	}
	return s.instructions == o.instructions && eq(s.inputs, o.inputs) && eq(s.outputs, o.outputs)
}

// historyField returns the name of the history input, if any.
func (s Signature) historyField() string {
	for _, f := range s.inputs {
		if f.Type.Kind == KindHistory {
			return f.Name
		}
	}
	return ""
}
