package jsontext_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/kowai/kowai/internal/jsontext"
)

// encode is what style's encoder writes for s.
func encode(t testing.TB, s string, style jsontext.Style) string {
	t.Helper()
	var buf bytes.Buffer
	if style == jsontext.Slog {
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "k", s)
		line := buf.String()
		const at = `"k":`
		return strings.TrimSuffix(line[strings.Index(line, at)+len(at):], "}\n")
	}
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(style == jsontext.JSON)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

var (
	styles  = []jsontext.Style{jsontext.JSON, jsontext.JSONNoHTML, jsontext.Slog}
	samples = []string{
		"", "plain text", `quote " and backslash \`, "line\nfeed\rreturn\ttab\bback\fform",
		"\x00\x01\x1f\x7f", "<script>&amp;</script>", "héllo wörld ✓ 日本語 🙂",
		"bad \xff utf-8 \xc3", "separators \u2028 and \u2029", "mixed <\"\u2028\xfe\n\b>",
	}
)

// AppendString writes exactly the bytes of encoding/json (with and without
// HTML escaping) and of slog's JSON handler.
func TestAppendStringMatchesEncoders(t *testing.T) {
	for _, s := range samples {
		for _, style := range styles {
			got := string(jsontext.AppendString([]byte("prefix:"), s, style))
			if want := "prefix:" + encode(t, s, style); got != want {
				t.Errorf("AppendString(%q, style %d) = %s, want %s", s, style, got, want)
			}
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range samples {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		style := styles[int(n)%len(styles)]
		if got, want := string(jsontext.AppendString(nil, s, style)), encode(t, s, style); got != want {
			t.Fatalf("AppendString(%q, style %d) = %s, want %s", s, style, got, want)
		}
	})
}

// Escaping costs no allocation beyond the caller's buffer.
func TestAppendStringAllocations(t *testing.T) {
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = jsontext.AppendString(buf[:0], "GET /api/v1/auth/me <ok> \u00e9\n", jsontext.JSON) }); n != 0 {
		t.Fatalf("%v allocations per call, want 0", n)
	}
}

// AppendFloat writes what encoding/json writes for the same float64.
func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	values := []float64{0, -0.5, 1, 3.25, 1e-6, 9.99e-7, 1e-7, 1.5e-12, 1e20, 1e21, 123456789e15, -2.5e-9, 0.1 + 0.2}
	for i := range 2000 {
		values = append(values, float64(i)*0.000173, math.Pow(10, float64(i%60-30))*1.7)
	}
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsontext.AppendFloat(nil, v); string(got) != string(want) {
			t.Fatalf("AppendFloat(%v) = %s, encoding/json %s", v, got, want)
		}
	}
}
