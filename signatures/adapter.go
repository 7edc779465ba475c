package signatures

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
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

// toHistory accepts History, *History, a list of objects or an object with a
// "messages" list (as decoded from JSON).
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

const completedMarker = "[[ ## completed ## ]]"

func marker(name string) string { return "[[ ## " + name + " ## ]]" }

// markerRE finds field markers anywhere in a reply, not only at line starts:
// models often glue them to the end of the previous value.
var markerRE = regexp.MustCompile(`\[\[ ## (\w+) ## \]\]`)

// Render builds the ChatAdapter messages for one call: the system message,
// the demos and history as user/assistant pairs, then the final user message.
func Render(sig Signature, demos []Example, inputs Values) ([]llms.MessageContent, error) {
	return render(sig, systemMessage(sig), demos, inputs)
}

// render is Render with the system message already built: it depends on the
// signature only, so predictors build it once per signature.
func render(sig Signature, system string, demos []Example, inputs Values) ([]llms.MessageContent, error) {
	msgs := []llms.MessageContent{llms.TextParts(llms.ChatMessageTypeSystem, system)}
	rest := sig
	hist := sig.historyField()
	if hist != "" {
		rest = sig.Delete(hist)
	}
	msgs = append(msgs, demoMessages(rest, demos)...)
	if hist != "" {
		h, err := toHistory(inputs[hist])
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", hist, err)
		}
		for _, turn := range h.Messages {
			msgs = append(msgs,
				llms.TextParts(llms.ChatMessageTypeHuman, userContent(rest, turn, "", false)),
				llms.TextParts(llms.ChatMessageTypeAI, assistantContent(rest, turn, "")))
		}
	}
	msgs = append(msgs, llms.TextParts(llms.ChatMessageTypeHuman, userContent(rest, inputs, "", true)))
	return msgs, nil
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

func describeFields(b *strings.Builder, fs []Field) {
	for i, f := range fs {
		fmt.Fprintf(b, "%d. `%s` (%s):", i+1, f.Name, f.Type)
		if f.Desc != "" {
			b.WriteString(" " + f.Desc)
		}
		b.WriteString("\n")
	}
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

// userContent renders the input blocks present in vals, followed, for the
// main request, by the output requirements.
func userContent(sig Signature, vals Values, prefix string, main bool) string {
	var parts []string
	if prefix != "" {
		parts = append(parts, prefix)
	}
	for _, f := range sig.inputs {
		if v, ok := vals[f.Name]; ok {
			parts = append(parts, marker(f.Name)+"\n"+formatValue(v))
		}
	}
	if main {
		parts = append(parts, outputRequirements(sig))
	}
	return strings.TrimSpace(strings.Join(parts, "\n\n"))
}

func outputRequirements(sig Signature) string {
	fs := make([]string, len(sig.outputs))
	for i, f := range sig.outputs {
		fs[i] = "`" + marker(f.Name) + "`"
		if f.Type.Kind != KindString {
			fs[i] += " (must be formatted as a valid Python " + pythonType(f.Type) + ")"
		}
	}
	return "Respond with the corresponding output fields, starting with the field " + strings.Join(fs, ", then ") +
		", and then ending with the marker for `" + completedMarker + "`."
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
	var parts []string
	for _, f := range sig.outputs {
		v, ok := vals[f.Name]
		switch {
		case ok:
			parts = append(parts, marker(f.Name)+"\n"+formatValue(v))
		case missing != "":
			parts = append(parts, marker(f.Name)+"\n"+missing)
		}
	}
	return strings.Join(parts, "\n\n") + "\n\n" + completedMarker + "\n"
}

const (
	incompleteDemoPrefix = "This is an example of the task, though some input or output fields are not supplied."
	notSupplied          = "Not supplied for this particular example. "
)

// demoMessages renders demos as DSPy does: incomplete demos (some fields
// missing, but at least one input and one output) first, with a note, then
// complete ones. Demos with no input or no output are skipped.
func demoMessages(sig Signature, demos []Example) []llms.MessageContent {
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
				llms.TextParts(llms.ChatMessageTypeHuman, userContent(sig, flat, "", false)),
				llms.TextParts(llms.ChatMessageTypeAI, assistantContent(sig, flat, "")))
		case hasIn && hasOut:
			incomplete = append(incomplete,
				llms.TextParts(llms.ChatMessageTypeHuman, userContent(sig, flat, incompleteDemoPrefix, false)),
				llms.TextParts(llms.ChatMessageTypeAI, assistantContent(sig, flat, notSupplied)))
		}
	}
	return append(incomplete, complete...)
}

// ParseReply extracts and coerces the output fields of sig from a reply.
// Markers count wherever they appear; the first occurrence of a field wins.
// A missing or ill-typed field yields a *ParseError.
func ParseReply(sig Signature, reply string) (Values, error) {
	sections := map[string]string{}
	locs := markerRE.FindAllStringSubmatchIndex(reply, -1)
	for i, loc := range locs {
		name := reply[loc[2]:loc[3]]
		end := len(reply)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if _, seen := sections[name]; !seen {
			sections[name] = reply[loc[1]:end]
		}
	}
	out := Values{}
	for _, f := range sig.outputs {
		raw, ok := sections[f.Name]
		if !ok {
			return nil, &ParseError{Field: f.Name, Reason: "the field's marker " + marker(f.Name) + " is missing", Raw: reply}
		}
		v, err := f.Type.parseText(raw)
		if err != nil {
			return nil, &ParseError{Field: f.Name, Reason: err.Error(), Raw: reply}
		}
		out[f.Name] = v
	}
	return out, nil
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
func correction(sig Signature, perr *ParseError) string {
	return "Your previous reply could not be parsed: field `" + perr.Field + "`: " + perr.Reason + ".\n\n" + outputRequirements(sig)
}

// jsonRequirements replaces the output requirements in JSON-mode fallback.
func jsonRequirements(sig Signature) string {
	fs := make([]string, len(sig.outputs))
	for i, f := range sig.outputs {
		fs[i] = "`" + f.Name + "`"
		if f.Type.Kind != KindString {
			fs[i] += " (must be formatted as a valid Python " + pythonType(f.Type) + ")"
		}
	}
	return "Respond with a JSON object in the following order of fields: " + strings.Join(fs, ", then ") + "."
}
