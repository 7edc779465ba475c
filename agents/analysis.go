package agents

import (
	"context"
	"fmt"
	"strings"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// Analysis analyses the text of each message: a summary, the sentiment, the topics and
// the key points. The reply is a short report; the structured fields are stored with
// the message (Output.Details).
func Analysis() Type {
	const sig = "text -> summary, sentiment: Literal['positive', 'neutral', 'negative'], topics: list[str], key_points: list[str]"
	return Type{
		Name:           "analysis",
		Description:    "Structured analysis of a text: summary, sentiment, topics and key points.",
		Signature:      sig,
		FixedSignature: true,
		New: func(def Definition) (Program, error) {
			s, err := signatures.Parse(sig)
			if err != nil {
				return nil, err
			}
			instructions := def.Instructions
			if instructions == "" {
				instructions = "Analyse the text: summarise it in two sentences, judge its overall sentiment, " +
					"and list its main topics and key points."
			}
			p := signatures.NewPredict(s.WithInstructions(instructions),
				signatures.PredictOptions{Temperature: def.Config.Temperature, MaxTokens: def.Config.MaxTokens})
			return moduleProgram{module: p, reply: func(ctx context.Context, model lm.LM, in Input) (Output, error) {
				res, err := signatures.Execute(ctx, model, p, signatures.Values{"text": in.Message})
				if err != nil {
					return Output{Usage: res.Usage}, err
				}
				return Output{Text: analysisReport(res.Outputs), Usage: res.Usage, Model: model.Name(), Details: res.Outputs}, nil
			}}, nil
		},
		Metric: signatures.ExactMatch("sentiment"),
	}
}

// analysisReport renders the analysis as the text of the reply.
func analysisReport(out signatures.Values) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Summary: %v\nSentiment: %v\n", out["summary"], out["sentiment"])
	for _, part := range []struct{ title, field string }{{"Topics", "topics"}, {"Key points", "key_points"}} {
		items, _ := out[part.field].([]any)
		if len(items) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", part.title)
		for _, it := range items {
			fmt.Fprintf(&b, "- %v\n", it)
		}
	}
	return strings.TrimSpace(b.String())
}
