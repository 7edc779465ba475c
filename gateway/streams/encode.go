package streams

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// appendBatch appends entries to b as a JSON array, as json.Marshal would
// encode them (without its HTML escaping), without reflection: a batch is
// encoded on every append of every stream.
func appendBatch(b []byte, entries []Entry) ([]byte, error) {
	b = append(b, '[')
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seq":`...)
		b = strconv.AppendInt(b, e.Seq, 10)
		b = append(b, `,"kind":`...)
		b = appendString(b, e.Kind)
		if e.Delta != "" {
			b = append(b, `,"delta":`...)
			b = appendString(b, e.Delta)
		}
		if e.Attempt != 0 {
			b = append(b, `,"attempt":`...)
			b = strconv.AppendInt(b, int64(e.Attempt), 10)
		}
		if len(e.Data) > 0 {
			if !json.Valid(e.Data) {
				return nil, fmt.Errorf("entry %d: data is not JSON", e.Seq)
			}
			b = append(b, `,"data":`...)
			b = append(b, e.Data...)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendString appends s as a JSON string. Invalid UTF-8 goes through
// encoding/json, which replaces it as the decoder would.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s) // a string always encodes
		return append(b, q...)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
