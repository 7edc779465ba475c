package actors

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/kowai/kowai/internal/jsontext"
)

// encodeMeta is m as JSON, byte for byte as json.Marshal writes it. Every message
// of every turn carries one; the usual metadata (strings and a usage) is written
// by hand in one allocation, json.Marshal's reflection costing about as much again.
// Details (which encoding/json compacts) and errors take json.Marshal's own path.
func encodeMeta(m messageMeta) json.RawMessage {
	if len(m.Details) == 0 && m.Error == nil && (m.Usage == nil || finite(m.Usage.GetCostUsd())) {
		n := 2 + len(m.CorrelationID) + len(m.ReplyTo) + len(m.AgentID) + len(m.Model) + len(m.RequestHash) + 6*16
		if m.Usage != nil {
			n += 96
		}
		return appendMeta(make([]byte, 0, n), m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		// messageMeta holds strings, numbers and already valid JSON; it always encodes.
		panic(fmt.Sprintf("actors: encode message metadata: %v", err))
	}
	return b
}

// appendMeta appends m without Details and Error, as json.Marshal writes it.
func appendMeta(b []byte, m messageMeta) []byte {
	b = append(b, '{')
	field := func(b []byte, key string) []byte {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, key...)
		return append(b, '"', ':')
	}
	str := func(b []byte, key, v string) []byte {
		if v == "" {
			return b
		}
		return jsontext.AppendString(field(b, key), v, jsontext.JSON)
	}
	b = str(b, "correlation_id", m.CorrelationID)
	b = str(b, "reply_to", m.ReplyTo)
	b = str(b, "agent_id", m.AgentID)
	b = str(b, "model", m.Model)
	if u := m.Usage; u != nil {
		b = append(field(b, "usage"), '{')
		start := len(b)
		sep := func(b []byte, key string) []byte {
			if len(b) > start {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, key...)
			return append(b, '"', ':')
		}
		if v := u.GetPromptTokens(); v != 0 {
			b = strconv.AppendInt(sep(b, "prompt_tokens"), v, 10)
		}
		if v := u.GetCompletionTokens(); v != 0 {
			b = strconv.AppendInt(sep(b, "completion_tokens"), v, 10)
		}
		if v := u.GetCostUsd(); v != 0 {
			b = appendFloat(sep(b, "cost_usd"), v)
		}
		if u.GetCacheHit() {
			b = append(sep(b, "cache_hit"), "true"...)
		}
		b = append(b, '}')
	}
	b = str(b, "request_hash", m.RequestHash)
	return append(b, '}')
}

// finite reports whether f is neither infinite nor NaN, which JSON cannot hold.
func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }

// appendFloat appends f as encoding/json writes a float64: the shortest
// representation, in exponent form below 1e-6 and from 1e21 on, with a one-digit
// negative exponent unpadded.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
