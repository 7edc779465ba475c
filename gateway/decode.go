package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// Validator is a request body that can check itself after decoding. It
// returns one FieldError per invalid field; none means valid.
type Validator interface {
	Validate() []FieldError
}

// Decode parses the JSON body of c into a new T strictly: the content type
// must be JSON, the body valid UTF-8 holding exactly one object, with no
// unknown fields and every value of the declared type; then T.Validate runs.
// Every failure is a 4xx *Error naming the offending field.
//
// The body is read as it arrived: a compressed body must have been decoded
// by the server's bounded decompression first (see decompressBody), and one
// that was not is refused rather than handed to Fiber's Ctx.Body, which
// would decompress it without any bound.
func Decode[T Validator](c *fiber.Ctx) (T, error) {
	var v T
	if len(c.Request().Header.Peek(fiber.HeaderContentEncoding)) > 0 {
		return v, &Error{Status: http.StatusUnsupportedMediaType, Title: http.StatusText(http.StatusUnsupportedMediaType),
			Detail: "compressed request bodies are not accepted here", Headers: map[string]string{fiber.HeaderAcceptEncoding: "identity"}}
	}
	if ct := strings.ToLower(strings.TrimSpace(strings.Split(c.Get(fiber.HeaderContentType), ";")[0])); ct != fiber.MIMEApplicationJSON {
		return v, NewError(http.StatusUnsupportedMediaType, "the body must be application/json")
	}
	if err := decodeJSON(c.Request().Body(), &v); err != nil {
		return v, err
	}
	if fields := v.Validate(); len(fields) > 0 {
		return v, Validation(fields...)
	}
	return v, nil
}

// decodeJSON is Decode without the content-type check and validation; it is
// shared with the WebSocket frames.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return Validation(FieldError{Field: "body", Message: "must be a JSON object"})
	}
	if !utf8.Valid(body) {
		return Validation(FieldError{Field: "body", Message: "must be valid UTF-8"})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Validation(jsonFieldError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Validation(FieldError{Field: "body", Message: "must hold exactly one JSON object"})
	}
	return nil
}

// jsonFieldError turns an encoding/json error into a client-facing field
// error without echoing Go type names.
func jsonFieldError(err error) FieldError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return FieldError{Field: "body", Message: fmt.Sprintf("malformed JSON at byte %d", syn.Offset)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return FieldError{Field: field, Message: "must be " + jsonKind(typ.Type.Kind().String())}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Field: "body", Message: "malformed JSON: unexpected end"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			return FieldError{Field: "body", Message: `unknown field ""`}
		}
		return FieldError{Field: name, Message: "unknown field"}
	}
	return FieldError{Field: "body", Message: "malformed JSON"}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "of another type"
}

// checkName validates a name or title shown to other people (a user's name,
// an agent's name, a conversation's title) after trimming surrounding
// space: at most maxChars characters of one line, without control
// characters (tabs and line breaks included), line or paragraph separators,
// or invisible format characters (Unicode category Cf: bidirectional
// overrides, embeddings and isolates, zero-width spaces and joiners,
// left-to-right and right-to-left marks, the byte order mark, ...), which
// can make a name read as something it is not. Empty passes unless required.
func checkName(field, v string, maxChars int, required bool) []FieldError {
	n := strings.TrimSpace(v)
	switch {
	case n == "" && required:
		return []FieldError{{Field: field, Message: "is required"}}
	case !utf8.ValidString(n):
		return []FieldError{{Field: field, Message: "must be valid UTF-8"}}
	case utf8.RuneCountInString(n) > maxChars:
		return []FieldError{{Field: field, Message: "must be at most " + strconv.Itoa(maxChars) + " characters"}}
	case strings.ContainsFunc(n, invisible):
		return []FieldError{{Field: field, Message: "must be one line of visible text: no control, format (such as bidirectional override or zero-width) or separator characters"}}
	}
	return nil
}

// invisible reports the characters checkName refuses.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}
