// Package jsontext appends JSON string literals to byte slices without
// allocating, byte for byte as encoding/json writes them. The request path's
// hand-written encoders (the access log line, /auth/me, stream batches) share
// it so that there is one escaper to keep right.
package jsontext

import (
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// safe and htmlSafe hold, for every byte, whether it goes into a JSON string
// as is: printable ASCII but quote and backslash, and for htmlSafe not <, >
// or & either. Bytes from 0x80 start a rune that is checked on its own.
var safe, htmlSafe = func() (s, h [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		ok := c != '"' && c != '\\'
		s[c] = ok
		h[c] = ok && c != '<' && c != '>' && c != '&'
	}
	return s, h
}()

// Style is whose bytes a string is written as. Every style escapes quote,
// backslash and control characters (\n \r \t by name, the others as \u00XX),
// writes invalid UTF-8 as U+FFFD and U+2028 and U+2029 as \u2028 and \u2029.
type Style uint8

const (
	// JSON is encoding/json's default: also \b and \f by name, and <, > and &
	// as \u003c, \u003e and \u0026.
	JSON Style = iota
	// JSONNoHTML is encoding/json with SetEscapeHTML(false): <, > and & as is.
	JSONNoHTML
	// Slog is log/slog's JSON handler: as JSONNoHTML, but \b and \f as
	// \u0008 and \u000c.
	Slog
)

// AppendString appends s as a quoted JSON string, byte for byte as style's
// encoder writes it.
func AppendString(b []byte, s string, style Style) []byte {
	b = append(b, '"')
	b = AppendEscaped(b, s, style)
	return append(b, '"')
}

// AppendEscaped is AppendString without the quotes.
func AppendEscaped(b []byte, s string, style Style) []byte {
	plain := &safe
	if style == JSON {
		plain = &htmlSafe
	}
	named := style != Slog
	start := 0
	for i := 0; i < len(s); {
		// Most text needs no escape: skip it a byte a step.
		for i < len(s) && plain[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = appendNamed(b, c, 'b', named)
			case '\f':
				b = appendNamed(b, c, 'f', named)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// appendNamed escapes the control character c by its name, or as \u00XX.
func appendNamed(b []byte, c, name byte, named bool) []byte {
	if named {
		return append(b, '\\', name)
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}

// AppendFloat appends f as encoding/json writes a float64: the shortest
// representation, in exponent form below 1e-6 and from 1e21 on, with a one-digit
// negative exponent unpadded (e-7, not e-07). f must be finite.
func AppendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
