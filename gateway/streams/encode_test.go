package streams

import (
	"encoding/json"
	"reflect"
	"testing"
)

// appendBatch encodes what json.Marshal would, as far as a decoder can
// tell, for every kind of entry and awkward text.
func TestAppendBatch(t *testing.T) {
	texts := []string{"", "plain", `quote " and \ backslash`, "new\nline\r\ttab", "\x00\x01\x1f\x7f",
		"<html> & 'single'", "émoji 🎉 \u2028\u2029", "bad \xff\xfe utf-8", "\U0010FFFF"}
	var entries []Entry
	for i, s := range texts {
		entries = append(entries, Entry{Seq: int64(i + 1), Kind: KindToken, Delta: s})
	}
	entries = append(entries,
		Entry{Seq: 100, Kind: KindRestart, Attempt: 3},
		Entry{Seq: 101, Kind: KindDone, Data: json.RawMessage(`{"response":"a \"b\"","usage":{"prompt_tokens":1}}`)},
		Entry{Seq: 102, Kind: KindError, Data: json.RawMessage(` {"status": 503} `)})
	got, err := appendBatch(nil, entries)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	var a, b []Entry
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		// RawMessage keeps its bytes; json.Marshal compacts them.
		a[i].Data, b[i].Data = compact(t, a[i].Data), compact(t, b[i].Data)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", a, b)
	}
	if _, err := appendBatch(nil, []Entry{{Seq: 1, Kind: KindDone, Data: json.RawMessage(`{not json`)}}); err == nil {
		t.Fatal("data that is not JSON was encoded")
	}
}

func compact(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	if raw == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
