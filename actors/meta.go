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
			b = jsontext.AppendFloat(sep(b, "cost_usd"), v)
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
