package agents

import "github.com/kowai/kowai/signatures"

// Chat is the conversational agent of the original design's chat module: one
// signature, "message, history -> response", with the conversation history as context.
func Chat() Type {
	const instructions = "You are a helpful, honest assistant. Answer the user's message, " +
		"taking the conversation history into account. Be concise unless asked for detail."
	return Type{
		Name:        "chat",
		Description: "A conversational assistant that answers each message with the conversation history as context.",
		Signature:   "message, history -> response",
		New: func(def Definition) (Program, error) {
			return newSignatureProgram(def, instructions, predict)
		},
		Metric: signatures.F1("response"),
	}
}
