package streams

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kowai/kowai/internal/jsontext"
)

// appendBatch appends entries, whose numbers follow each other, to b as a
// compact batch, without reflection (a batch is encoded on every append of
// every stream): a JSON array of the first entry's number, then one item
// per entry, a token as its delta (a JSON string) and any other entry as
// an object with its kind, attempt and data, in the fields an Entry
// encodes to. A token costs its text and three bytes, not the forty of an
// encoded Entry: the batch passes through Redis's script engine, whose cost
// grows with its size.
func appendBatch(b []byte, entries []Entry) ([]byte, error) {
	b = append(b, '[')
	if len(entries) > 0 {
		b = strconv.AppendInt(b, entries[0].Seq, 10)
	}
	for _, e := range entries {
		b = append(b, ',')
		if e.Kind == KindToken {
			b = jsontext.AppendString(b, e.Delta, jsontext.JSONNoHTML)
			continue
		}
		b = append(b, `{"kind":`...)
		b = jsontext.AppendString(b, e.Kind, jsontext.JSONNoHTML)
		if e.Delta != "" {
			b = append(b, `,"delta":`...)
			b = jsontext.AppendString(b, e.Delta, jsontext.JSONNoHTML)
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

// batchSize is about the length of entries' batch, so that it is encoded
// in one allocation: each item's text and its framing, with room for a
// little escaping.
func batchSize(entries []Entry) int {
	n := 24
	for _, e := range entries {
		n += len(e.Delta) + len(e.Data) + 4
		if e.Kind != KindToken {
			n += 48
		}
	}
	return n + n/8
}

// decodeBatch decodes what appendBatch encodes.
func decodeBatch(raw []byte) ([]Entry, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errEmptyMessage
	}
	var seq int64
	if err := json.Unmarshal(items[0], &seq); err != nil {
		return nil, fmt.Errorf("batch's first number: %w", err)
	}
	es := make([]Entry, 0, len(items)-1)
	for i, item := range items[1:] {
		var e Entry
		if len(item) > 0 && item[0] == '"' {
			e.Kind = KindToken
			if err := json.Unmarshal(item, &e.Delta); err != nil {
				return nil, fmt.Errorf("batch item %d: %w", i+1, err)
			}
		} else if err := json.Unmarshal(item, &e); err != nil {
			return nil, fmt.Errorf("batch item %d: %w", i+1, err)
		}
		e.Seq = seq + int64(i)
		es = append(es, e)
	}
	return es, nil
}
