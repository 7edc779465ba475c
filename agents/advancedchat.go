package agents

import (
	"context"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/programs"
)

// AdvancedChat is the multi-stage chat program of the original design
// (signatures/programs.MultiStageChat): a context analysis of the message,
// a response written with step-by-step reasoning from it, and a quality
// check that scores the response in [0, 1]. The reply is the response; the
// analysis, reasoning, quality and issues are stored with it (Details). Only
// the response stage streams.
func AdvancedChat() Type {
	return Type{
		Name: "advanced-chat",
		Description: "A chat assistant that analyses the conversation's context, writes its response with step-by-step " +
			"reasoning, and scores the response's quality.",
		Signature:      "message, history -> response",
		FixedSignature: true,
		New: func(def Definition) (Program, error) {
			p := programs.NewMultiStageChatWith(programs.MultiStageOptions{
				Instructions: def.Instructions,
				Predict:      signatures.PredictOptions{Temperature: def.Config.Temperature, MaxTokens: def.Config.MaxTokens},
			})
			return moduleProgram{module: p, reply: func(ctx context.Context, model lm.LM, in Input) (Output, error) {
				vals := signatures.Values{"message": in.Message, "history": signatures.Chat{Messages: in.History, Input: "message", Output: "response", Cache: in.HistoryCache}}
				outs, usage, err := execute(ctx, model, p, vals, streamTo("response", "respond", in.Stream)...)
				if err != nil {
					return Output{Usage: usage}, err
				}
				return textOutput(outs, usage, model, "response"), nil
			}}, nil
		},
		Metric: signatures.F1("response"),
	}
}
