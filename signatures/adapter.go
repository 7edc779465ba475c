package signatures

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tmc/langchaingo/llms"
)

// ErrParse is wrapped by every *ParseError.
var ErrParse = errors.New("signatures: cannot parse the model's reply")

// ErrMissingInput means a module was called without one of its inputs.
var ErrMissingInput = errors.New("signatures: missing input")

// Values maps field names to values: string, int, float64, bool, []any,
// map[string]any, or History for a history input.
type Values map[string]any

// Example is one data point or demo: input values and the expected (or, for a
// bootstrapped demo, produced) output values.
type Example struct {
	// Inputs are the values given to the program or predictor.
	Inputs Values `json:"inputs"`
	// Outputs are the expected (labels) or produced (demos) values.
	Outputs Values `json:"outputs,omitempty"`
	// Augmented marks a demo bootstrapped from a successful trace.
	Augmented bool `json:"augmented,omitempty"`
}

// get looks a field up in the outputs, then the inputs.
func (e Example) get(name string) (any, bool) {
	if v, ok := e.Outputs[name]; ok {
		return v, true
	}
	v, ok := e.Inputs[name]
	return v, ok
}

// History is a conversation history input, as in DSPy: each message holds
// the values of one earlier turn keyed by the signature's field names, e.g.
// {"message": "hi", "response": "hello"}.
type History struct {
	// Messages are the earlier turns, oldest first.
	Messages []Values `json:"messages"`
}

// toHistory accepts History, *History, Chat, *Chat, a list of objects or an
// object with a "messages" list (as decoded from JSON).
func toHistory(v any) (History, error) {
	switch x := v.(type) {
	case nil:
		return History{}, nil
	case History:
		return x, nil
	case *History:
		if x == nil {
			return History{}, nil
		}
		return *x, nil
	case Chat:
		return x.History(), nil
	case *Chat:
		if x == nil {
			return History{}, nil
		}
		return x.History(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return History{}, fmt.Errorf("history: %w", err)
	}
	var h History
	if json.Unmarshal(b, &h) == nil {
		return h, nil
	}
	if err := json.Unmarshal(b, &h.Messages); err != nil {
		return History{}, fmt.Errorf("history: want a list of turns or {\"messages\": [...]}: %w", err)
	}
	return h, nil
}

// ParseError is a reply that lacks an output field or holds a value that
// does not fit the field's type. It keeps the raw reply.
type ParseError struct {
	// Field is the output field at fault.
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Raw is the model's full reply.
	Raw string
}

// Error describes the problem without the (possibly long) raw reply.
func (e *ParseError) Error() string {
	return fmt.Sprintf("signatures: cannot parse the model's reply: field %q: %s", e.Field, e.Reason)
}

// Unwrap returns ErrParse.
func (e *ParseError) Unwrap() error { return ErrParse }

const (
	completedMarker = "[[ ## completed ## ]]"
	markerOpen      = "[[ ## "
	markerClose     = " ## ]]"
)

func marker(name string) string { return markerOpen + name + markerClose }

// nextMarker finds the first field marker in s at or after from and returns
// its bounds and the field name, or start -1. Markers count anywhere, not
// only at line starts: models often glue them to the end of the previous
// value. A name is one or more ASCII letters, digits or underscores.
func nextMarker(s string, from int) (start, end int, name string) {
	for {
		i := strings.Index(s[from:], markerOpen)
		if i < 0 {
			return -1, -1, ""
		}
		start = from + i
		j := start + len(markerOpen)
		k := j
		for k < len(s) && isWordByte(s[k]) {
			k++
		}
		if k > j && strings.HasPrefix(s[k:], markerClose) {
			return start, k + len(markerClose), s[j:k]
		}
		from = start + 1
	}
}

// prompt holds the parts of the ChatAdapter messages that depend on the
// signature alone. Predictors build it once per signature, so a call only
// renders its input values.
type prompt struct {
	sig  Signature
	rest Signature // sig without its history input
	hist string    // the history input's name, or ""
	name string    // sig.String()
	// system is shared by the messages of every call: nothing downstream
	// changes a message's parts in place.
	system  llms.MessageContent
	respond string // the output requirements closing the final user message
}

func newPrompt(sig Signature) *prompt {
	pr := &prompt{sig: sig, rest: sig, hist: sig.historyField(), name: sig.String()}
	if pr.hist != "" {
		pr.rest = sig.Delete(pr.hist)
	}
	pr.system = llms.TextParts(llms.ChatMessageTypeSystem, systemMessage(sig))
	pr.respond = outputRequirements(sig)
	return pr
}

// Render builds the ChatAdapter messages for one call: the system message,
// the demos and history as user/assistant pairs, then the final user message.
func Render(sig Signature, demos []Example, inputs Values) ([]llms.MessageContent, error) {
	pr := newPrompt(sig)
	return pr.render(nil, pr.demoMessages(demos), collect(sig.inputs, inputs, nil))
}

// collect appends the fields of fs present in vals to dst, in field order,
// with one lookup each: the values of a call are looked up once and then
// checked, rendered and recorded from the slice.
func collect(fs []Field, vals Values, dst []namedValue) []namedValue {
	for _, f := range fs {
		if v, ok := vals[f.Name]; ok {
			dst = append(dst, namedValue{name: f.Name, value: v, text: f.Type.isStr()})
		}
	}
	return dst
}

// render appends the messages of a call to dst, from demos already rendered
// with pr.demoMessages, which predictors keep between calls, and the inputs
// present (collected from pr.sig.inputs).
func (pr *prompt) render(dst, demoMsgs []llms.MessageContent, in []namedValue) ([]llms.MessageContent, error) {
	var (
		h    History
		chat Chat
	)
	skip := pr.hist
	if pr.hist != "" {
		for _, v := range in {
			if v.name != pr.hist {
				continue
			}
			switch x := v.value.(type) {
			case string:
				// DSPy makes an untyped "history" a str; kowai keeps it a
				// History (the chat programs rely on it) but renders a
				// string given to it as the text block a str input gets.
				skip = ""
				continue
			case Chat:
				chat = x
				continue
			case *Chat:
				if x != nil {
					chat = *x
				}
				continue
			}
			var err error
			if h, err = toHistory(v.value); err != nil {
				return nil, fmt.Errorf("input %q: %w", pr.hist, err)
			}
		}
	}
	msgs := slices.Grow(dst, 2+len(demoMsgs)+2*(len(h.Messages)+chat.len()))
	msgs = append(msgs, pr.system)
	msgs = append(msgs, demoMsgs...)
	msgs = pr.chatTurns(msgs, chat)
	for _, turn := range h.Messages {
		msgs = append(msgs,
			llms.TextParts(llms.ChatMessageTypeHuman, userContent(pr.rest, turn, "", "")),
			llms.TextParts(llms.ChatMessageTypeAI, assistantContent(pr.rest, turn, "")))
	}
	return append(msgs, llms.TextParts(llms.ChatMessageTypeHuman, userBlocks(in, skip, "", pr.respond))), nil
}

func systemMessage(sig Signature) string {
	var b strings.Builder
	b.WriteString("Your input fields are:\n")
	describeFields(&b, sig.inputs)
	b.WriteString("Your output fields are:\n")
	describeFields(&b, sig.outputs)
	b.WriteString("All interactions will be structured in the following way, with the appropriate values filled in.\n\n")
	for _, f := range sig.inputs {
		b.WriteString(marker(f.Name) + "\n{" + f.Name + "}\n\n")
	}
	for _, f := range sig.outputs {
		b.WriteString(marker(f.Name) + "\n{" + f.Name + "}")
		if n := f.Type.note(); n != "" {
			b.WriteString("        " + n)
		}
		b.WriteString("\n\n")
	}
	b.WriteString(completedMarker + "\n")
	b.WriteString("In adhering to this structure, your objective is: ")
	for _, line := range strings.Split(dedent(sig.instructions), "\n") {
		b.WriteString("\n        " + line)
	}
	return b.String()
}

// describeFields writes the numbered field list as DSPy's
// get_field_description_string does (dspy/adapters/utils.py): every line
// ends ": " and the description, and the list is stripped, so only the
// last line of a section loses the trailing space of an empty description.
func describeFields(b *strings.Builder, fs []Field) {
	var sec strings.Builder
	for i, f := range fs {
		if i > 0 {
			sec.WriteString("\n")
		}
		fmt.Fprintf(&sec, "%d. `%s` (%s): %s", i+1, f.Name, f.Type, f.Desc)
	}
	b.WriteString(strings.TrimSpace(sec.String()))
	b.WriteString("\n")
}

// dedent removes the common leading whitespace of the lines, like Python's
// textwrap.dedent.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	prefix := ""
	first := true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		ind := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = ind, false
			continue
		}
		for !strings.HasPrefix(ind, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(lines, "\n")
}

// userContent renders the input blocks present in vals, separated by blank
// lines, after prefix and before suffix when those are not empty.
func userContent(sig Signature, vals Values, prefix, suffix string) string {
	var buf [8]namedValue
	return userBlocks(collect(sig.inputs, vals, buf[:0]), "", prefix, suffix)
}

// userBlocks is userContent over collected inputs, leaving out the one named
// skip (the history, rendered as turns of its own).
func userBlocks(in []namedValue, skip, prefix, suffix string) string {
	// The values are formatted first, once each, so the message is sized
	// exactly and long inputs are copied once; the usual handful of fields
	// fits on the stack.
	var buf [8]string
	texts := buf[:0]
	size := len(prefix) + len(suffix) + 4
	for _, v := range in {
		if v.name == skip {
			continue
		}
		t := formatInput(v.value, v.text)
		texts = append(texts, t)
		size += len(markerOpen) + len(v.name) + len(markerClose) + 3 + len(t)
	}
	var b strings.Builder
	b.Grow(size)
	sep := ""
	if prefix != "" {
		b.WriteString(prefix)
		sep = "\n\n"
	}
	i := 0
	for _, v := range in {
		if v.name == skip {
			continue
		}
		b.WriteString(sep)
		b.WriteString(markerOpen)
		b.WriteString(v.name)
		b.WriteString(markerClose + "\n")
		b.WriteString(texts[i])
		i++
		sep = "\n\n"
	}
	if suffix != "" {
		b.WriteString(sep)
		b.WriteString(suffix)
	}
	return strings.TrimSpace(b.String())
}

func outputRequirements(sig Signature) string {
	var b strings.Builder
	b.WriteString("Respond with the corresponding output fields, starting with the field ")
	for i, f := range sig.outputs {
		if i > 0 {
			b.WriteString(", then ")
		}
		b.WriteString("`" + marker(f.Name) + "`")
		if !f.Type.isStr() {
			b.WriteString(" (must be formatted as a valid Python " + pythonType(f.Type) + ")")
		}
	}
	b.WriteString(", and then ending with the marker for `" + completedMarker + "`.")
	return b.String()
}

// pythonType is the type named in the output requirements; untyped JSON
// objects are dict[str, Any] there, as in DSPy.
func pythonType(t Type) string {
	if t.Kind == KindObject && (t.Name == "dict" || t.Name == "") {
		return "dict[str, Any]"
	}
	return t.String()
}

// assistantContent renders the output blocks of vals; missing outputs get
// missing, or are left out when missing is empty.
func assistantContent(sig Signature, vals Values, missing string) string {
	// Like userBlocks: the values are formatted first, so the message is built in
	// one allocation of its final size (it is rendered for every turn of the
	// history, on every call).
	var (
		buf   [4]string
		names [4]string
	)
	texts, present := buf[:0], names[:0]
	size := len(completedMarker) + 3
	for _, f := range sig.outputs {
		v, ok := vals[f.Name]
		var t string
		switch {
		case ok:
			t = formatInput(v, f.Type.isStr())
		case missing != "":
			t = missing
		default:
			continue
		}
		texts, present = append(texts, t), append(present, f.Name)
		size += len(markerOpen) + len(f.Name) + len(markerClose) + 3 + len(t)
	}
	var b strings.Builder
	b.Grow(size)
	for i, t := range texts {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(markerOpen)
		b.WriteString(present[i])
		b.WriteString(markerClose + "\n")
		b.WriteString(t)
	}
	b.WriteString("\n\n" + completedMarker + "\n")
	return b.String()
}

const (
	incompleteDemoPrefix = "This is an example of the task, though some input or output fields are not supplied."
	notSupplied          = "Not supplied for this particular example. "
)

// demoMessages renders demos as DSPy does: incomplete demos (some fields
// missing, but at least one input and one output) first, with a note, then
// complete ones. Demos with no input or no output are skipped.
func (pr *prompt) demoMessages(demos []Example) []llms.MessageContent {
	sig := pr.rest
	var incomplete, complete []llms.MessageContent
	for _, d := range demos {
		flat := Values{}
		hasIn, hasOut, all := false, false, true
		for _, f := range sig.inputs {
			if v, ok := d.get(f.Name); ok {
				flat[f.Name], hasIn = v, true
			} else {
				all = false
			}
		}
		for _, f := range sig.outputs {
			if v, ok := d.get(f.Name); ok {
				flat[f.Name], hasOut = v, true
			} else {
				all = false
			}
		}
		switch {
		case all:
			complete = append(complete,
				llms.TextParts(llms.ChatMessageTypeHuman, userContent(sig, flat, "", "")),
				llms.TextParts(llms.ChatMessageTypeAI, assistantContent(sig, flat, "")))
		case hasIn && hasOut:
			incomplete = append(incomplete,
				llms.TextParts(llms.ChatMessageTypeHuman, userContent(sig, flat, incompleteDemoPrefix, "")),
				llms.TextParts(llms.ChatMessageTypeAI, assistantContent(sig, flat, notSupplied)))
		}
	}
	return append(incomplete, complete...)
}

// ParseReply extracts and coerces the output fields of sig from a reply.
// Markers count wherever they appear; the first occurrence of a field wins.
// A missing or ill-typed field yields a *ParseError.
func ParseReply(sig Signature, reply string) (Values, error) {
	// One pass over the markers; sections live on the stack for the usual
	// handful of output fields.
	var buf [8]section
	secs := buf[:0]
	if n := len(sig.outputs); n <= len(buf) {
		secs = buf[:n]
	} else {
		secs = make([]section, n)
	}
	missing := len(secs)
	start, end, name := nextMarker(reply, 0)
	for start >= 0 && missing > 0 {
		nextStart, nextEnd, nextName := nextMarker(reply, end)
		for i, f := range sig.outputs {
			if f.Name == name && !secs[i].found {
				stop := len(reply)
				if nextStart >= 0 {
					stop = nextStart
				}
				secs[i].text, secs[i].found = reply[end:stop], true
				missing--
				break
			}
		}
		start, end, name = nextStart, nextEnd, nextName
	}
	if missing == len(secs) {
		// No output marker at all: a model that answered with one object
		// keyed by the output fields ({'answer': 'Paris'}) is read as DSPy's
		// ChatAdapter reads it through its JSONAdapter fallback, without
		// spending a call.
		if body := stripFences(reply); strings.HasPrefix(body, "{") {
			if out, err := parseJSONReply(sig, body); err == nil {
				return out, nil
			}
		}
	}
	out := make(Values, len(sig.outputs))
	for i, f := range sig.outputs {
		if !secs[i].found {
			// As DSPy's apply_output_field_defaults: a missing output with a
			// default takes it, a missing optional one is None.
			if f.Default != nil {
				out[f.Name] = f.Default
				continue
			}
			if f.Type.Optional {
				out[f.Name] = nil
				continue
			}
			return nil, &ParseError{Field: f.Name, Reason: "the field's marker " + marker(f.Name) + " is missing", Raw: reply}
		}
		v, err := f.Type.parseText(secs[i].text)
		if err != nil {
			return nil, &ParseError{Field: f.Name, Reason: err.Error(), Raw: reply}
		}
		out[f.Name] = v
	}
	return out, nil
}

// section is the text after an output field's first marker.
type section struct {
	text  string
	found bool
}

// parseJSONReply reads a JSON-mode reply: one object keyed by output field.
func parseJSONReply(sig Signature, reply string) (Values, error) {
	obj, err := Dict.parseText(reply)
	if err != nil {
		return nil, &ParseError{Field: sig.outputs[0].Name, Reason: "JSON mode: " + err.Error(), Raw: reply}
	}
	m := obj.(map[string]any)
	out := Values{}
	for _, f := range sig.outputs {
		v, ok := m[f.Name]
		if !ok {
			if f.Default != nil || f.Type.Optional {
				out[f.Name] = f.Default
				continue
			}
			return nil, &ParseError{Field: f.Name, Reason: "JSON mode: key is missing", Raw: reply}
		}
		if s, isStr := v.(string); isStr && f.Type.Kind != KindString {
			v, err = f.Type.parseText(s)
		} else {
			v, err = f.Type.coerce(v)
		}
		if err != nil {
			return nil, &ParseError{Field: f.Name, Reason: "JSON mode: " + err.Error(), Raw: reply}
		}
		out[f.Name] = v
	}
	return out, nil
}

// correction is the message that shows the model its mistake before a retry.
func correction(pr *prompt, perr *ParseError) string {
	return "Your previous reply could not be parsed: field `" + perr.Field + "`: " + perr.Reason + ".\n\n" + pr.respond
}

// jsonRequirements replaces the output requirements in JSON-mode fallback.
func jsonRequirements(sig Signature) string {
	fs := make([]string, len(sig.outputs))
	for i, f := range sig.outputs {
		fs[i] = "`" + f.Name + "`"
		if !f.Type.isStr() {
			fs[i] += " (must be formatted as a valid Python " + pythonType(f.Type) + ")"
		}
	}
	return "Respond with a JSON object in the following order of fields: " + strings.Join(fs, ", then ") + "."
}
