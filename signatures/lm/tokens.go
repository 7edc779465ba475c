package lm

import (
	"strings"

	"github.com/kowai/kowai/signatures/lm/internal/textchunk"
	"github.com/tmc/langchaingo/llms"
)

// EstimateTokens approximates the token count of s without a tokenizer (about
// four bytes per token, at least one for non-empty text). It is used where a
// model reports no usage (the offline and scripted models) so budgets and
// metrics still see plausible, deterministic numbers.
func EstimateTokens(s string) int { return textchunk.EstimateTokens(s) }

// MessagesText concatenates the text parts of msgs, one part per line. Other
// part kinds (images, tool calls) are skipped.
func MessagesText(msgs []llms.MessageContent) string {
	var b strings.Builder
	for _, m := range msgs {
		for _, p := range m.Parts {
			if t, ok := p.(llms.TextContent); ok {
				b.WriteString(t.Text)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}
