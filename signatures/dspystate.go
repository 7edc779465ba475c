package signatures

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// dspyPredictor is one predictor's entry in the JSON that DSPy's
// Module.save(path) writes (dspy/predict/predict.py, dump_state; the
// signature part is dspy/signatures/signature.py, dump_state).
type dspyPredictor struct {
	Demos     []map[string]any `json:"demos"`
	Signature *struct {
		Instructions string `json:"instructions"`
		Fields       []struct {
			Prefix      string `json:"prefix"`
			Description string `json:"description"`
		} `json:"fields"`
	} `json:"signature"`
}

// ReadDSPyState reads a program saved by DSPy's Module.save("x.json") and
// maps it onto program's predictors, returning kowai's State (versioned,
// content-hashed) for LoadState or WriteState, so a program compiled in
// Python runs in kowai without optimizing it again. The mapping:
//
//   - Top-level keys are DSPy's predictor names ("generate_answer.predict",
//     "react", "extract.predict"), which are kowai's names for the same
//     program structure (snake_case field paths). A file saved from a bare
//     dspy.Predict holds one predictor's state at the top level and maps onto
//     a program with exactly one predictor.
//   - signature.instructions become the predictor's instructions; the
//     signature's fields, inputs then outputs, are matched by position and
//     must be as many as the program's: each one's prefix and description are
//     taken, DSPy's placeholder description "${name}" meaning none.
//   - demos are flat objects: keys naming an output field of the predictor
//     become the demo's outputs, the others its inputs; "augmented" marks a
//     bootstrapped demo.
//   - "lm", "traces", "train" and "metadata" are ignored: kowai configures
//     models separately, and the rest is not state.
//
// Field names and types are not in DSPy's file; they come from program.
// Nothing changes on program; a mismatch is an ErrStateMismatch.
func ReadDSPyState(r io.Reader, program any) (State, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return State{}, fmt.Errorf("dspy state: %w", err)
	}
	preds := Predictors(program)
	if len(preds) == 0 {
		return State{}, ErrNoPredictors
	}
	entries := map[string]json.RawMessage{}
	if _, flat := raw["signature"]; flat {
		if len(preds) != 1 {
			return State{}, fmt.Errorf("%w: the file holds one predictor's state, the program has %d predictors", ErrStateMismatch, len(preds))
		}
		b, err := json.Marshal(raw)
		if err != nil {
			return State{}, fmt.Errorf("dspy state: %w", err)
		}
		entries[preds[0].Name] = b
	} else {
		for k, v := range raw {
			if k != "metadata" {
				entries[k] = v
			}
		}
	}
	if len(entries) != len(preds) {
		return State{}, fmt.Errorf("%w: %d predictors in the file (%s), %d in the program", ErrStateMismatch, len(entries), keysOf(entries), len(preds))
	}
	st := State{Format: StateFormat, Predictors: map[string]PredictorState{}}
	for _, np := range preds {
		b, ok := entries[np.Name]
		if !ok {
			return State{}, fmt.Errorf("%w: no state for predictor %q in the file (it has %s)", ErrStateMismatch, np.Name, keysOf(entries))
		}
		ps, err := fromDSPy(np, b)
		if err != nil {
			return State{}, err
		}
		st.Predictors[np.Name] = ps
	}
	v, err := st.hash()
	if err != nil {
		return State{}, err
	}
	st.Version = v
	return st, nil
}

func fromDSPy(np NamedPredictor, b json.RawMessage) (PredictorState, error) {
	var dp dspyPredictor
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&dp); err != nil {
		return PredictorState{}, fmt.Errorf("dspy state: predictor %q: %w", np.Name, err)
	}
	if dp.Signature == nil {
		return PredictorState{}, fmt.Errorf("%w: predictor %q has no signature in the file", ErrStateMismatch, np.Name)
	}
	sig := np.Predict.Signature()
	ss := signatureState(sig)
	if len(dp.Signature.Fields) != len(ss.Fields) {
		return PredictorState{}, fmt.Errorf("%w: predictor %q has %d fields in the file, %d in the program (%s)",
			ErrStateMismatch, np.Name, len(dp.Signature.Fields), len(ss.Fields), sig)
	}
	ss.Instructions = dp.Signature.Instructions
	for i, f := range dp.Signature.Fields {
		ss.Fields[i].Prefix = f.Prefix
		ss.Fields[i].Description = f.Description
		if f.Description == "${"+ss.Fields[i].Name+"}" {
			ss.Fields[i].Description = ""
		}
	}
	demos := make([]Example, 0, len(dp.Demos))
	for _, d := range dp.Demos {
		ex := Example{Inputs: Values{}, Outputs: Values{}}
		for k, v := range d {
			if k == "augmented" {
				ex.Augmented, _ = v.(bool)
				continue
			}
			if _, role, ok := sig.Field(k); ok && role == Output {
				ex.Outputs[k] = v
			} else {
				ex.Inputs[k] = v
			}
		}
		demos = append(demos, plainExample(ex))
	}
	return PredictorState{Signature: ss, Demos: demos}, nil
}

func keysOf(m map[string]json.RawMessage) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, fmt.Sprintf("%q", k))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
