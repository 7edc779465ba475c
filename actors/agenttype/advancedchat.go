package agenttype

import (
	"context"
	"strings"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// AdvancedChat answers in three steps: it analyses the context of the message (intent,
// what the history already settled), drafts a response from that analysis, and checks
// the draft's quality, replacing it with a revision when the check finds a problem.
// Only the draft is streamed; the reply is the checked text.
func AdvancedChat() Type {
	const (
		analyzeSig = "message, history -> context_analysis"
		respondSig = "message, history, context_analysis -> response"
		checkSig   = "message, response -> verdict: Literal['ok', 'revise'], revised_response"
	)
	return Type{
		Name:        "advanced-chat",
		Description: "A chat assistant that analyses the conversation's context, responds, then checks and if needed revises its response.",
		Signature:   respondSig,
		New: func(def Definition) (Program, error) {
			opts := func(name string) signatures.PredictOptions {
				return signatures.PredictOptions{Name: name, Temperature: def.Config.Temperature, MaxTokens: def.Config.MaxTokens}
			}
			respond := signatures.MustParse(respondSig)
			if def.Instructions != "" {
				respond = respond.WithInstructions(def.Instructions)
			}
			p := &advancedChat{
				analyze: signatures.NewPredict(signatures.MustParse(analyzeSig).WithInstructions(
					"Analyse the user's message in the context of the conversation: what they want, "+
						"what the history already settled, and what a good answer must cover."), opts("analyze")),
				respond: signatures.NewPredict(respond, opts("respond")),
				check: signatures.NewPredict(signatures.MustParse(checkSig).WithInstructions(
					"Check the response to the message for correctness, relevance and tone. Answer ok if it "+
						"needs no change; otherwise answer revise and give the improved response."), opts("check")),
			}
			return p, nil
		},
	}
}

type advancedChat struct {
	analyze, respond, check *signatures.Predict
}

// Forward runs the three steps; it makes advancedChat a signatures.Module, so its
// predictors can be optimised like any program's.
func (a *advancedChat) Forward(ctx context.Context, in signatures.Values) (signatures.Values, error) {
	analysis, err := a.analyze.Forward(ctx, in)
	if err != nil {
		return nil, err
	}
	draft, err := a.respond.Forward(ctx, signatures.Values{"message": in["message"], "history": in["history"],
		"context_analysis": analysis["context_analysis"]})
	if err != nil {
		return nil, err
	}
	verdict, err := a.check.Forward(ctx, signatures.Values{"message": in["message"], "response": draft["response"]})
	if err != nil {
		return nil, err
	}
	out := signatures.Values{"context_analysis": analysis["context_analysis"], "draft": draft["response"],
		"verdict": verdict["verdict"], "response": draft["response"]}
	if revised, _ := verdict["revised_response"].(string); verdict["verdict"] == "revise" && strings.TrimSpace(revised) != "" {
		out["response"] = revised
	}
	return out, nil
}

// Reply implements Program.
func (a *advancedChat) Reply(ctx context.Context, model lm.LM, in Input) (Output, error) {
	vals := signatures.Values{"message": in.Message, "history": history(in.History, "message", "response")}
	res, err := signatures.Execute(ctx, model, a, vals, streamTo("response", "respond", in.Stream)...)
	if err != nil {
		return Output{Usage: res.Usage}, err
	}
	return textOutput(res, model, "response"), nil
}
