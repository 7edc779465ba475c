package workflows

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/kowai/kowai/internal/jsontext"
	"github.com/kowai/kowai/signatures/lm"
)

// AppendJSON appends e's JSON, the bytes json.Marshal(e) returns, to b. The
// runtime encodes every event it stores and streams, two or more per task, and
// encoding/json's reflection over Event (with the stack it grows on a task's
// fresh goroutine) was the largest single cost of a task on the runtime's side;
// this writes the fields directly (strings through jsontext, encoding/json's
// escaping) and falls back to encoding/json only for the usage and for times
// outside what RFC 3339 can hold.
func (e Event) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"run_id":`...)
	b = jsontext.AppendString(b, e.RunID, jsontext.JSON)
	if e.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, int64(e.Seq), 10)
	}
	if e.Name != "" {
		b = append(b, `,"name":`...)
		b = jsontext.AppendString(b, e.Name, jsontext.JSON)
	}
	if e.Kind != "" {
		b = append(b, `,"kind":`...)
		b = jsontext.AppendString(b, string(e.Kind), jsontext.JSON)
	}
	b = append(b, `,"status":`...)
	b = jsontext.AppendString(b, e.Status, jsontext.JSON)
	if e.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(e.Attempt), 10)
	}
	if e.Error != "" {
		b = append(b, `,"error":`...)
		b = jsontext.AppendString(b, e.Error, jsontext.JSON)
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
		b = jsontext.AppendString(b, e.ContinuedAs, jsontext.JSON)
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
