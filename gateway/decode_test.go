package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

type createThing struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
}

func (c createThing) Validate() []FieldError {
	var f []FieldError
	if strings.TrimSpace(c.Name) == "" {
		f = append(f, FieldError{Field: "name", Message: "must not be empty"})
	}
	if c.Count < 0 {
		f = append(f, FieldError{Field: "count", Message: "must be >= 0"})
	}
	return f
}

func TestDecodeStrict(t *testing.T) {
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		var e *Error
		if !errors.As(err, &e) {
			return c.Status(599).SendString(err.Error())
		}
		field := ""
		if len(e.Fields) > 0 {
			field = e.Fields[0].Field + ": " + e.Fields[0].Message
		}
		return c.Status(e.Status).SendString(field)
	}})
	app.Post("/", func(c *fiber.Ctx) error {
		v, err := Decode[createThing](c)
		if err != nil {
			return err
		}
		return c.SendString(v.Name)
	})
	for _, tc := range []struct {
		name, ct, body string
		status         int
		want           string
	}{
		{"valid", "application/json", `{"name":"a","count":1}`, 200, "a"},
		{"charset ok", "application/json; charset=utf-8", `{"name":"b"}`, 200, "b"},
		{"wrong content type", "text/plain", `{"name":"a"}`, 415, ""},
		{"no content type", "", `{"name":"a"}`, 415, ""},
		{"empty", "application/json", ``, 400, "body: must be a JSON object"},
		{"malformed", "application/json", `{"name":`, 400, "body: malformed JSON: unexpected end"},
		{"syntax", "application/json", `{"name" "a"}`, 400, "body: malformed JSON at byte 9"},
		{"unknown field", "application/json", `{"name":"a","admin":true}`, 400, "admin: unknown field"},
		{"wrong type", "application/json", `{"name":5}`, 400, "name: must be a string"},
		{"wrong type int", "application/json", `{"name":"a","count":"x"}`, 400, "count: must be an integer"},
		{"array body", "application/json", `[1,2]`, 400, "body: must be an object"},
		{"trailing data", "application/json", `{"name":"a"} {"name":"b"}`, 400, "body: must hold exactly one JSON object"},
		{"invalid utf8", "application/json", "{\"name\":\"\xff\xfe\"}", 400, "body: must be valid UTF-8"},
		{"validation", "application/json", `{"name":"  ","count":-1}`, 400, "name: must not be empty"},
		{"null", "application/json", `null`, 400, "name: must not be empty"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		res, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status || string(got) != tc.want {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, res.StatusCode, got, tc.status, tc.want)
		}
	}
}

// FuzzDecode: decoding never panics, and whatever it accepts validates.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{`{"name":"a","count":1}`, `{`, `[]`, `null`, "{\"name\":\"\xff\"}", `{"name":"a","tags":["x",1]}`, `{"count":1e400}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v createThing
		err := decodeJSON(body, &v)
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Status != http.StatusBadRequest || len(e.Fields) != 1) {
			t.Fatalf("decode error is not a 400 field error: %v", err)
		}
	})
}
