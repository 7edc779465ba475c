// Package offline is kowai's built-in language model: deterministic, no
// network, no weights. It is the default provider, so programs run (and
// tests pass) anywhere, and it implements langchaingo's llms.Model so it can
// stand in for any langchaingo model.
//
// # Replies
//
// The model reads the prompt format that package signatures renders (the
// DSPy ChatAdapter structure) without importing it:
//
//   - When the last user message contains "Respond with the corresponding
//     output fields", it replies with every named output field in order and a
//     final completed marker. Values follow each field's type note in the
//     system message (or the type hint in the user message): int is a number
//     in [0, 100) and float one in [0, 1], both derived from a digest of the
//     conversation; bool is True; an enum is "finish" when that is an option,
//     else the first option; a list or JSON object is the smallest value its
//     schema accepts; a string says it comes from kowai's offline model,
//     quotes the start of the first input (markers defused) and carries the
//     input digest. In JSON mode the same values come back as one
//     JSON object.
//   - When tools are offered and none has answered since the last user
//     message, it calls the first tool with the smallest arguments its
//     schema accepts; once a tool has answered it replies in text.
//   - Otherwise it says plainly that it is an offline model and quotes the
//     last user message.
//
// The same messages always give the same reply. MaxTokens is ignored so a
// reply is never cut before its completed marker. Usage is estimated (about
// four bytes per token) and reported under langchaingo openai's
// GenerationInfo keys.
//
// # Example
//
//	m := offline.New()
//	resp, err := m.GenerateContent(ctx, []llms.MessageContent{
//		llms.TextParts(llms.ChatMessageTypeSystem, systemPrompt),
//		llms.TextParts(llms.ChatMessageTypeHuman, userPrompt),
//	})
//	// resp.Choices[0].Content is "[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"
//	// for a signature "question -> answer: int".
package offline
