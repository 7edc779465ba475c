// Package textchunk holds the small text helpers shared by the models of
// package lm: a tokenizer-free token estimate and rune-safe chunked streaming.
package textchunk

import (
	"context"
	"unicode/utf8"
)

// EstimateTokens approximates the token count of s: about four bytes per
// token, at least one for non-empty text.
func EstimateTokens(s string) int { return EstimateTokensOfLen(len(s)) }

// EstimateTokensOfLen is EstimateTokens of a text of n bytes, for text that is
// in several pieces: it spares joining them.
func EstimateTokensOfLen(n int) int {
	if n <= 0 {
		return 0
	}
	return (n + 3) / 4
}

// Stream sends text to fn in pieces of at most size runes (never splitting a
// rune), stopping at the first error.
func Stream(ctx context.Context, fn func(context.Context, []byte) error, text string, size int) error {
	for len(text) > 0 {
		end, runes := 0, 0
		for end < len(text) && runes < size {
			_, w := utf8.DecodeRuneInString(text[end:])
			end += w
			runes++
		}
		if err := fn(ctx, []byte(text[:end])); err != nil {
			return err
		}
		text = text[end:]
	}
	return nil
}
