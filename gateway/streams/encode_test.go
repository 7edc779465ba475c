package streams

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"
)

// A batch decodes to the entries it encodes, numbered from the first, for
// every kind of entry and awkward text, and a token costs its text and
// three bytes.
func TestAppendBatch(t *testing.T) {
	texts := []string{"", "plain", `quote " and \ backslash`, "new\nline\r\ttab", "\x00\x01\x1f\x7f",
		"<html> & 'single'", "émoji 🎉 \u2028\u2029", "bad \xff\xfe utf-8", "\U0010FFFF", "trailing \xe2\x82"}
	var entries []Entry
	for i, s := range texts {
		entries = append(entries, Entry{Seq: int64(i + 41), Kind: KindToken, Delta: s})
	}
	next := int64(len(texts) + 41)
	entries = append(entries,
		Entry{Seq: next, Kind: KindRestart, Attempt: 3},
		Entry{Seq: next + 1, Kind: KindToken, Delta: "after the restart"},
		Entry{Seq: next + 2, Kind: KindDone, Data: json.RawMessage(`{"response":"a \"b\"","usage":{"prompt_tokens":1}}`)},
		Entry{Seq: next + 3, Kind: KindError, Data: json.RawMessage(` {"status": 503} `)})
	got, err := appendBatch(nil, entries)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := decodeBatch(got)
	if err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	// What encoding/json makes of the same entries (invalid UTF-8 replaced).
	var want []Entry
	raw, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		// RawMessage keeps its bytes; json.Marshal compacts them.
		decoded[i].Data, want[i].Data = compact(t, decoded[i].Data), compact(t, want[i].Data)
	}
	if !reflect.DeepEqual(decoded, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", decoded, want)
	}
	tokens, err := appendBatch(nil, []Entry{{Seq: 7, Kind: KindToken, Delta: "Hel"}, {Seq: 8, Kind: KindToken, Delta: "lo"}})
	if err != nil || string(tokens) != `[7,"Hel","lo"]` {
		t.Fatalf("tokens encode as %s (%v)", tokens, err)
	}
	if _, err := appendBatch(nil, []Entry{{Seq: 1, Kind: KindDone, Data: json.RawMessage(`{not json`)}}); err == nil {
		t.Fatal("data that is not JSON was encoded")
	}
	for _, bad := range []string{`[]`, `{}`, `["x","y"]`, `[1,2]`, `[1,"a"`} {
		if es, err := decodeBatch([]byte(bad)); err == nil {
			t.Fatalf("%s decoded as %+v", bad, es)
		}
	}
}

// Messages written by earlier versions, a JSON array of entries under "b"
// or one entry under "e", still decode.
func TestDecodeEarlierMessages(t *testing.T) {
	for _, m := range []redis.XMessage{
		{ID: "2-1", Values: map[string]any{"b": `[{"seq":1,"kind":"token","delta":"Hel"},{"seq":2,"kind":"done","data":{"response":"Hel"}}]`}},
		{ID: "2-1", Values: map[string]any{"c": `[1,"Hel",{"kind":"done","data":{"response":"Hel"}}]`}},
	} {
		es, err := decodeMessage(m)
		if err != nil || len(es) != 2 || !reflect.DeepEqual(es[0], Entry{Seq: 1, Kind: KindToken, Delta: "Hel"}) ||
			es[1].Seq != 2 || es[1].Kind != KindDone || string(es[1].Data) != `{"response":"Hel"}` {
			t.Fatalf("%v: %+v %v", m.Values, es, err)
		}
	}
	es, err := decodeMessage(redis.XMessage{ID: "1-1", Values: map[string]any{"e": `{"seq":1,"kind":"restart","attempt":2}`}})
	if err != nil || len(es) != 1 || !reflect.DeepEqual(es[0], Entry{Seq: 1, Kind: KindRestart, Attempt: 2}) {
		t.Fatalf("one entry: %+v %v", es, err)
	}
	if _, err := decodeMessage(redis.XMessage{ID: "1-1", Values: map[string]any{"x": "[]"}}); err == nil {
		t.Fatal("a message without a known field decoded")
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
