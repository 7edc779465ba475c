package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/console"
)

// consoleCSP admits only the console's own modules and style sheet and
// same-origin requests (the public API, its event streams and WebSocket).
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// registerConsole adds /console, the browser console (package console), and
// its files under /console/{asset}. The files are read from the binary once.
func (s *Server) registerConsole() error {
	files, err := console.Assets()
	if err != nil {
		return err
	}
	assets := map[string][]byte{}
	etags := map[string]string{}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return fmt.Errorf("gateway: console assets: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || console.ContentType(e.Name()) == "" {
			continue
		}
		b, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return fmt.Errorf("gateway: console asset %s: %w", e.Name(), err)
		}
		assets[e.Name()] = b
		sum := sha256.Sum256(b)
		etags[e.Name()] = `"` + hex.EncodeToString(sum[:12]) + `"`
	}
	page, ok := assets["index.html"]
	if !ok {
		return fmt.Errorf("gateway: console assets lack index.html")
	}
	send := func(c *fiber.Ctx, name string, body []byte) error {
		c.Set(fiber.HeaderContentSecurityPolicy, consoleCSP)
		c.Set(fiber.HeaderContentType, console.ContentType(name))
		// no-cache with a content ETag: browsers revalidate each file on
		// every load and get an empty 304 while the binary is the same.
		c.Set(fiber.HeaderCacheControl, "no-cache")
		etag := etags[name]
		c.Set(fiber.HeaderETag, etag)
		if c.Get(fiber.HeaderIfNoneMatch) == etag {
			return c.SendStatus(http.StatusNotModified)
		}
		return c.Send(body)
	}
	s.Route(fiber.MethodGet, "/console", Op{Summary: "The console: a browser UI for chat, agents, workflows, the cluster and administration", Tag: "Meta",
		Description: "A page of the node's own ES modules and style sheet (no other origin) that uses only this public API with the signed-in user's tokens.",
		Response:    "", ContentType: fiber.MIMETextHTMLCharsetUTF8},
		func(c *fiber.Ctx) error { return send(c, "index.html", page) })
	s.Route(fiber.MethodGet, "/console/:asset", Op{Summary: "A script, style sheet or image of the console", Tag: "Meta",
		Description: "Modules are `text/javascript`, the style sheet `text/css`; all are served under the page's Content-Security-Policy.",
		Response:    "", ContentType: "text/javascript; charset=utf-8", Errors: []int{http.StatusNotFound}},
		func(c *fiber.Ctx) error {
			name := c.Params("asset")
			body, ok := assets[name]
			if !ok || name == "index.html" {
				return NewError(http.StatusNotFound, "no such console file")
			}
			return send(c, name, body)
		})
	return nil
}
