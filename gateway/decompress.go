package gateway

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Request bodies may be compressed with these codings; anything else is
// refused with 415. Brotli is not among them: its decoder may allocate a
// 16 MiB window for a few bytes of input, and no client needs it for
// request bodies.
const acceptedEncodings = "gzip, deflate"

// maxCodings bounds the codings stacked on one body ("gzip, gzip" is two).
const maxCodings = 2

// decompressBody makes every request body that reaches a handler plain and
// bounded. A body sent with Content-Encoding gzip or deflate (zlib, RFC 9110
// 8.4.1) is decompressed through a reader that stops at limit bytes; a
// larger result is a 413 problem, whatever the compressed size was, so a few
// hundred bytes cannot grow into gigabytes. The decoded body replaces the
// request's and Content-Encoding is removed, so Fiber's own Ctx.Body and
// BodyParser, which decompress without any bound, never see a coding.
// Unknown codings get 415 with Accept-Encoding; corrupt data gets 400.
func decompressBody(limit int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		lines := c.Request().Header.PeekAll(fiber.HeaderContentEncoding)
		if len(lines) == 0 {
			return c.Next()
		}
		// Several header lines are one list, in order (RFC 9110 5.3).
		header := make([]string, len(lines))
		for i, l := range lines {
			header[i] = string(l)
		}
		codings, err := parseCodings(strings.Join(header, ","))
		if err != nil {
			return err
		}
		if len(codings) > 0 && len(c.Request().Body()) > 0 {
			body, err := decodeBounded(c.Request().Body(), codings, limit)
			if err != nil {
				return err
			}
			c.Request().SetBody(body)
		}
		c.Request().Header.Del(fiber.HeaderContentEncoding)
		return c.Next()
	}
}

// parseCodings returns the codings of a Content-Encoding value in the order
// they were applied, without "identity", or a 415 problem.
func parseCodings(header string) ([]string, error) {
	var codings []string
	for raw := range strings.SplitSeq(header, ",") {
		coding := strings.ToLower(strings.TrimSpace(raw))
		switch coding {
		case "identity":
		case "gzip", "x-gzip", "deflate":
			codings = append(codings, coding)
		default:
			return nil, &Error{Status: http.StatusUnsupportedMediaType, Title: http.StatusText(http.StatusUnsupportedMediaType),
				Detail:  "request bodies may be compressed with " + acceptedEncodings + " only",
				Headers: map[string]string{fiber.HeaderAcceptEncoding: acceptedEncodings}}
		}
	}
	if len(codings) > maxCodings {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Title: http.StatusText(http.StatusUnsupportedMediaType),
			Detail:  "a request body may carry at most " + strconv.Itoa(maxCodings) + " content codings",
			Headers: map[string]string{fiber.HeaderAcceptEncoding: acceptedEncodings}}
	}
	return codings, nil
}

// errBodyTooLarge is the decoded body outgrowing the limit.
var errBodyTooLarge = errors.New("decompressed body exceeds the limit")

// decodeBounded undoes codings (applied in that order) on body and returns at
// most limit bytes, streaming every layer so that no intermediate result is
// held whole.
func decodeBounded(body []byte, codings []string, limit int) ([]byte, error) {
	var r io.Reader = bytes.NewReader(body)
	for i := len(codings) - 1; i >= 0; i-- {
		var err error
		switch codings[i] {
		case "gzip", "x-gzip":
			r, err = gzip.NewReader(r)
		case "deflate":
			r, err = zlib.NewReader(r)
		}
		if err != nil {
			return nil, corruptBody(codings[i], err)
		}
	}
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(r, int64(limit)+1))
	if err == nil && n > int64(limit) {
		err = errBodyTooLarge
	}
	switch {
	case errors.Is(err, errBodyTooLarge):
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Title: http.StatusText(http.StatusRequestEntityTooLarge),
			Detail: "the decompressed body exceeds " + strconv.Itoa(limit) + " bytes", Err: err}
	case err != nil:
		return nil, corruptBody(strings.Join(codings, ", "), err)
	}
	return out.Bytes(), nil
}

// corruptBody is the 400 problem of a body that does not decode.
func corruptBody(coding string, err error) error {
	return &Error{Status: http.StatusBadRequest, Title: http.StatusText(http.StatusBadRequest),
		Detail: "the body is not valid " + coding + " data", Fields: []FieldError{{Field: "body", Message: "does not decode as " + coding}},
		Err: fmt.Errorf("decode %s body: %w", coding, err)}
}
