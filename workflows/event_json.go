package workflows

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kowai/kowai/signatures/lm"
)

// AppendJSON appends e's JSON, the bytes json.Marshal(e) returns, to b. The
// runtime encodes every event it stores and streams, two or more per task, and
// encoding/json's reflection over Event (with the stack it grows on a task's
// fresh goroutine) was the largest single cost of a task on the runtime's side;
// this writes the fields directly and falls back to encoding/json only for
// values it does not write itself (strings that need escaping, times outside
// what RFC 3339 can hold).
func (e Event) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"run_id":`...)
	if b, err = appendJSONString(b, e.RunID); err != nil {
		return nil, err
	}
	if e.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, int64(e.Seq), 10)
	}
	if e.Name != "" {
		b = append(b, `,"name":`...)
		if b, err = appendJSONString(b, e.Name); err != nil {
			return nil, err
		}
	}
	if e.Kind != "" {
		b = append(b, `,"kind":`...)
		if b, err = appendJSONString(b, string(e.Kind)); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"status":`...)
	if b, err = appendJSONString(b, e.Status); err != nil {
		return nil, err
	}
	if e.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(e.Attempt), 10)
	}
	if e.Error != "" {
		b = append(b, `,"error":`...)
		if b, err = appendJSONString(b, e.Error); err != nil {
			return nil, err
		}
	}
	if e.Usage != (lm.Usage{}) {
		u, err := json.Marshal(e.Usage)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"usage":`...)
		b = append(b, u...)
	}
	if e.ContinuedAs != "" {
		b = append(b, `,"continued_as":`...)
		if b, err = appendJSONString(b, e.ContinuedAs); err != nil {
			return nil, err
		}
	}
	if !e.WakeAt.IsZero() {
		b = append(b, `,"wake_at":`...)
		if b, err = appendJSONTime(b, e.WakeAt); err != nil {
			return nil, err
		}
	}
	if e.RetryIn != 0 {
		b = append(b, `,"retry_in":`...)
		b = strconv.AppendInt(b, int64(e.RetryIn), 10)
	}
	b = append(b, `,"time":`...)
	if b, err = appendJSONTime(b, e.Time); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as encoding/json writes it: as it is when no byte of
// it needs escaping (printable ASCII other than the quote, the backslash and the
// HTML characters encoding/json escapes), through encoding/json otherwise.
func appendJSONString(b []byte, s string) ([]byte, error) {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			return append(b, q...), nil
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// appendJSONTime appends t as time.Time's MarshalJSON writes it (RFC 3339 with
// nanoseconds, quoted), through MarshalJSON itself when t's year or zone offset
// is one it refuses.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	_, offset := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || offset <= -24*3600 || offset >= 24*3600 {
		q, err := t.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(b, q...), nil
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
