package signatures

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// StateFormat is the version of the saved-state JSON layout.
const StateFormat = 1

// ErrStateMismatch means saved state does not fit the program it is loaded
// onto (other predictors or fields).
var ErrStateMismatch = errors.New("signatures: saved state does not match the program")

// State is a compiled program's learnable state: per predictor, the
// signature's instructions and fields and the demos. It is data, never
// code, and is loaded onto a freshly constructed program.
type State struct {
	// Format is StateFormat.
	Format int `json:"format"`
	// Program optionally names the registered program the state belongs to.
	Program string `json:"program,omitempty"`
	// Version is the content hash of Predictors (see Version).
	Version string `json:"version"`
	// Predictors maps predictor names (see Predictors) to their state.
	Predictors map[string]PredictorState `json:"predictors"`
}

// PredictorState is one predictor's state.
type PredictorState struct {
	// Signature holds instructions and fields; Demos the few-shot examples.
	Signature SignatureState `json:"signature"`
	Demos     []Example      `json:"demos"`
}

// SignatureState is a signature as saved.
type SignatureState struct {
	// Instructions and Fields (inputs first, in order) of the signature.
	Instructions string       `json:"instructions"`
	Fields       []FieldState `json:"fields"`
}

// FieldState is a field as saved; Type is its name in the string form.
type FieldState struct {
	// Name, Role ("input" or "output") and Type must match the program's
	// field on load; Schema, Description and Prefix are informative or
	// loaded.
	Name        string          `json:"name"`
	Role        string          `json:"role"`
	Type        string          `json:"type"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Description string          `json:"description,omitempty"`
	Prefix      string          `json:"prefix,omitempty"`
}

func roleName(r Role) string {
	if r == Output {
		return "output"
	}
	return "input"
}

func signatureState(s Signature) SignatureState {
	st := SignatureState{Instructions: s.instructions}
	for _, fs := range []struct {
		role   Role
		fields []Field
	}{{Input, s.inputs}, {Output, s.outputs}} {
		for _, f := range fs.fields {
			st.Fields = append(st.Fields, FieldState{
				Name: f.Name, Role: roleName(fs.role), Type: f.Type.String(), Schema: f.Type.Schema,
				Description: f.Desc, Prefix: f.Prefix,
			})
		}
	}
	return st
}

// SaveState captures program's state; name is recorded as State.Program.
func SaveState(program any, name string) (State, error) {
	preds := Predictors(program)
	if len(preds) == 0 {
		return State{}, ErrNoPredictors
	}
	st := State{Format: StateFormat, Program: name, Predictors: map[string]PredictorState{}}
	for _, np := range preds {
		demos := np.Predict.Demos()
		if demos == nil {
			demos = []Example{}
		}
		st.Predictors[np.Name] = PredictorState{Signature: signatureState(np.Predict.Signature()), Demos: demos}
	}
	v, err := st.hash()
	if err != nil {
		return State{}, err
	}
	st.Version = v
	return st, nil
}

// hash is "sha256:" and the first 16 hex digits of the SHA-256 of the
// predictors' canonical JSON (map keys sorted by encoding/json).
func (s State) hash() (string, error) {
	b, err := json.Marshal(s.Predictors)
	if err != nil {
		return "", fmt.Errorf("state: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:8]), nil
}

// Version returns the content hash of program's state: programs with equal
// instructions, fields and demos share a version.
func Version(program any) (string, error) {
	st, err := SaveState(program, "")
	if err != nil {
		return "", err
	}
	return st.Version, nil
}

// LoadState installs st onto program, which must have the same predictors
// with the same field names, roles and types; instructions, descriptions,
// prefixes and demos are taken from st. Nothing changes when it fails.
func LoadState(program any, st State) error {
	if st.Format != StateFormat {
		return fmt.Errorf("%w: format %d, want %d", ErrStateMismatch, st.Format, StateFormat)
	}
	if v, err := st.hash(); err != nil || (st.Version != "" && v != st.Version) {
		return fmt.Errorf("%w: content does not match its version %s", ErrStateMismatch, st.Version)
	}
	preds := Predictors(program)
	if len(preds) != len(st.Predictors) {
		return fmt.Errorf("%w: %d predictors in the state, %d in the program", ErrStateMismatch, len(st.Predictors), len(preds))
	}
	sigs := make([]Signature, len(preds))
	for i, np := range preds {
		ps, ok := st.Predictors[np.Name]
		if !ok {
			return fmt.Errorf("%w: no state for predictor %q", ErrStateMismatch, np.Name)
		}
		cur := np.Predict.Signature()
		want := signatureState(cur)
		if !slices.EqualFunc(want.Fields, ps.Signature.Fields, func(a, b FieldState) bool {
			return a.Name == b.Name && a.Role == b.Role && a.Type == b.Type
		}) {
			return fmt.Errorf("%w: predictor %q has fields %s", ErrStateMismatch, np.Name, cur)
		}
		sig := cur.WithInstructions(ps.Signature.Instructions)
		for j, fs := range ps.Signature.Fields {
			target := sig.inputs
			k := j
			if fs.Role == "output" {
				target, k = sig.outputs, j-len(sig.inputs)
			}
			target[k].Desc, target[k].Prefix = fs.Description, fs.Prefix
		}
		sigs[i] = sig
	}
	for i, np := range preds {
		np.Predict.SetSignature(sigs[i])
		np.Predict.SetDemos(st.Predictors[np.Name].Demos)
	}
	return nil
}

// WriteState writes program's state as indented JSON.
func WriteState(w io.Writer, program any, name string) (State, error) {
	st, err := SaveState(program, name)
	if err != nil {
		return State{}, err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	return st, nil
}

// ReadState decodes a state written by WriteState.
func ReadState(r io.Reader) (State, error) {
	var st State
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&st); err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	for name, ps := range st.Predictors {
		for i := range ps.Demos {
			ps.Demos[i] = plainExample(ps.Demos[i])
		}
		st.Predictors[name] = ps
	}
	return st, nil
}

func plainExample(e Example) Example {
	if e.Inputs != nil {
		e.Inputs = Values(jsonPlain(map[string]any(e.Inputs)).(map[string]any))
	}
	if e.Outputs != nil {
		e.Outputs = Values(jsonPlain(map[string]any(e.Outputs)).(map[string]any))
	}
	return e
}

// ReadExamples reads a JSONL data set: one {"inputs": {...}, "outputs":
// {...}} object per line; blank lines are skipped. Whole numbers decode as
// int.
func ReadExamples(r io.Reader) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var ex Example
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ex); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(ex.Inputs) == 0 {
			return nil, fmt.Errorf("line %d: no inputs", line)
		}
		out = append(out, plainExample(ex))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}
