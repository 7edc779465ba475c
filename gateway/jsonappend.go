package gateway

import (
	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/jsontext"
)

// sendPublicUser answers u as JSON, byte for byte what c.JSON(u) writes
// (TestAppendPublicUserMatchesJSON), without reflection or an allocated
// result: GET /auth/me is the cheapest authenticated read, polled by every
// client, and encoding/json was a third of its handler's CPU.
func sendPublicUser(c *fiber.Ctx, u *auth.PublicUser) error {
	var buf [512]byte
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	c.Response().SetBody(appendPublicUser(buf[:0], u)) // copied
	return nil
}

// appendPublicUser appends u's JSON encoding as encoding/json writes it.
func appendPublicUser(b []byte, u *auth.PublicUser) []byte {
	b = append(b, `{"id":`...)
	b = jsontext.AppendString(b, u.ID, jsontext.JSON)
	b = append(b, `,"email":`...)
	b = jsontext.AppendString(b, u.Email, jsontext.JSON)
	b = append(b, `,"name":`...)
	b = jsontext.AppendString(b, u.Name, jsontext.JSON)
	b = append(b, `,"roles":`...)
	if u.Roles == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range u.Roles {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsontext.AppendString(b, string(r), jsontext.JSON)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
