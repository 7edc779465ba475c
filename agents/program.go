package agents

import (
	"context"
	"fmt"
	"strings"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// signatureProgram answers with one signatures.Module whose signature has a message
// input, optionally a history input, and a text output. It is how a type built on a
// single signature becomes a Program.
type signatureProgram struct {
	module  signatures.Module
	message string // the input that receives the user's message
	history string // the History input, or ""
	summary string // the input that receives the running summary, or ""
	extra   []string
	// fixed are the values of extra inputs the type sets itself; other extra inputs
	// get "".
	fixed  signatures.Values
	output string // the output that is the reply text
}

// SignatureProgram is the program of an agent made of one prediction over its
// signature (def.Signature, with def.Instructions when set): the input called
// "message" (else the first plain input) gets the user's message, a History input the
// earlier turns, an input called "summary" or "context" the running summary, every
// other input its value in inputs (else ""), and the output called "response" (else
// the first output) is the reply; other outputs are kept as details. Temperature and
// max tokens come from def.Config. It is how an agent type built on one signature
// answers, its agents' own signatures and instructions included.
func SignatureProgram(def Definition, inputs signatures.Values) (ModuleProgram, error) {
	p, err := newSignatureProgram(def, "", predict)
	if err != nil {
		return nil, err
	}
	p.fixed = inputs
	return p, nil
}

// newSignatureProgram parses def's signature (instructions from def, or fallback),
// builds the module with build and maps its fields: the input called "message" (else
// the first plain input) gets the message, a History input the earlier turns, an input
// called "summary" or "context" the running summary, any other input "", and the
// output called "response" (else the first output) is the reply.
func newSignatureProgram(def Definition, fallback string,
	build func(signatures.Signature, signatures.PredictOptions) (signatures.Module, error)) (*signatureProgram, error) {
	sig, err := signatures.Parse(def.Signature)
	if err != nil {
		return nil, fmt.Errorf("signature %q: %w", def.Signature, err)
	}
	instructions := def.Instructions
	if instructions == "" {
		instructions = fallback
	}
	if instructions != "" {
		sig = sig.WithInstructions(instructions)
	}
	p := &signatureProgram{}
	for _, f := range sig.Inputs() {
		switch {
		case f.Type.Kind == signatures.KindHistory:
			p.history = f.Name
		case f.Name == "message":
			p.message = f.Name
		case f.Name == "summary" || f.Name == "context":
			p.summary = f.Name
		default:
			p.extra = append(p.extra, f.Name)
		}
	}
	if p.message == "" {
		if len(p.extra) == 0 {
			return nil, fmt.Errorf("signature %q has no input for the message", def.Signature)
		}
		p.message, p.extra = p.extra[0], p.extra[1:]
	}
	outs := sig.Outputs()
	p.output = outs[0].Name
	for _, f := range outs {
		if f.Name == "response" {
			p.output = f.Name
		}
	}
	p.module, err = build(sig, signatures.PredictOptions{Temperature: def.Config.Temperature, MaxTokens: def.Config.MaxTokens})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Module implements ModuleProgram.
func (p *signatureProgram) Module() signatures.Module { return p.module }

// Reply implements Program.
func (p *signatureProgram) Reply(ctx context.Context, model lm.LM, in Input) (Output, error) {
	vals := signatures.Values{p.message: in.Message}
	if p.history != "" {
		vals[p.history] = signatures.Chat{Messages: in.History, Input: p.message, Output: p.output, Cache: in.HistoryCache}
	}
	if p.summary != "" {
		vals[p.summary] = in.Summary
	}
	for _, name := range p.extra {
		v, ok := p.fixed[name]
		if !ok {
			v = ""
		}
		vals[name] = v
	}
	outs, usage, err := execute(ctx, model, p.module, vals, streamTo(p.output, "", in.Stream)...)
	if err != nil {
		return Output{Usage: usage}, err
	}
	return textOutput(outs, usage, model, p.output), nil
}

// execute runs m on in under a fresh Run with model, as signatures.Execute does, and
// returns its outputs and usage (also on error) without building the run's trace,
// which a reply does not use: a chat turn would otherwise copy its inputs and outputs
// into new maps on every call.
func execute(ctx context.Context, model lm.LM, m signatures.Module, in signatures.Values, opts ...signatures.RunOption) (signatures.Values, lm.Usage, error) {
	run := signatures.NewRun(model, append(opts, signatures.WithoutTraceValues)...)
	out, err := m.Forward(signatures.WithRun(ctx, run), in)
	return out, run.Usage(), err
}

// streamTo returns the run options that stream output field of predictor (any, when
// empty) to stream.
func streamTo(field, predictor string, stream func(context.Context, string) error) []signatures.RunOption {
	if stream == nil {
		return nil
	}
	return []signatures.RunOption{signatures.WithListener(signatures.StreamListener{Field: field, Predictor: predictor, OnChunk: stream})}
}

// textOutput is the Output of a run whose reply is the text field; every other output
// goes into Details.
func textOutput(outs signatures.Values, usage lm.Usage, model lm.LM, text string) Output {
	// A text output is a string already: fmt.Sprint would copy it.
	reply, ok := outs[text].(string)
	if !ok {
		reply = fmt.Sprint(outs[text])
	}
	out := Output{Text: strings.TrimSpace(reply), Usage: usage, Model: model.Name()}
	for k, v := range outs {
		if k == text {
			continue
		}
		if out.Details == nil {
			out.Details = map[string]any{}
		}
		out.Details[k] = v
	}
	return out
}

// predict builds a plain signatures.Predict.
func predict(sig signatures.Signature, opts signatures.PredictOptions) (signatures.Module, error) {
	return signatures.NewPredict(sig, opts), nil
}
