// Package clientaddr decides which address a request came from, believing
// X-Forwarded-For and Forwarded only from the proxies an operator trusts
// (KOWAI_TRUSTED_PROXIES).
//
// # Which address
//
// A request's peer is the TCP connection's remote address. When the peer is
// not a trusted proxy, the peer is the client and every forwarding header is
// ignored: anyone can write one. When it is trusted, the hops its header
// lists are walked from right to left (each proxy appends the address it
// received from) and the first hop that is not itself a trusted proxy is the
// client. When every hop is trusted the leftmost one is the client; a hop
// that is not an IP address ends the walk at the trusted hop to its right,
// since a proxy we trust reported something we cannot use.
//
// X-Forwarded-For is read when present, Forwarded (RFC 7239, its for=
// parameters) otherwise. A proxy that sets only Forwarded must therefore
// remove an X-Forwarded-For sent by the client.
//
// # Use
//
// The gateway installs Resolver.Middleware early; everything that needs the
// client's address (rate limits, throttles, the access log, audit entries)
// calls From:
//
//	r := clientaddr.New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
//	app.Use(r.Middleware())
//	app.Get("/", func(c *fiber.Ctx) error { return c.SendString(clientaddr.From(c)) })
package clientaddr

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
)

// maxHops bounds the forwarding hops examined, so a header of thousands of
// entries costs no more than a short one.
const maxHops = 32

// Resolver finds the client address of requests. The zero value trusts no
// proxy. It is safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
	texts   addrTexts
}

// addrTexts caches the text of peer addresses, direct-mapped: every request
// of a keep-alive connection, and most connections of a client, come from
// one address, and formatting it allocated on every request. A miss costs
// what formatting did.
type addrTexts struct {
	slots [256]atomic.Pointer[addrText]
}

// addrText is an address and its text.
type addrText struct {
	addr netip.Addr
	text string
}

// text returns the text of a, which the caller must not change.
func (t *addrTexts) text(a netip.Addr) *string {
	b := a.As16()
	h := binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	h ^= h >> 32
	h ^= h >> 16
	slot := &t.slots[(h^h>>8)%uint64(len(t.slots))]
	if e := slot.Load(); e != nil && e.addr == a {
		return &e.text
	}
	e := &addrText{addr: a, text: a.String()}
	slot.Store(e)
	return &e.text
}

// New returns a Resolver believing the forwarding headers of peers inside
// trusted; nil trusts nobody.
func New(trusted []netip.Prefix) *Resolver {
	out := make([]netip.Prefix, 0, len(trusted))
	for _, p := range trusted {
		out = append(out, p.Masked())
	}
	return &Resolver{trusted: out}
}

// FromIPNets converts the networks of Config.TrustedProxies to prefixes,
// skipping entries that are not IPv4 or IPv6 networks.
func FromIPNets(nets []*net.IPNet) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		if n == nil {
			continue
		}
		addr, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, bits := n.Mask.Size()
		if bits == 0 {
			continue
		}
		addr = addr.Unmap()
		if addr.Is4() && bits == 128 {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(addr, ones).Masked())
	}
	return out
}

type localsKey struct{}

// Middleware stores the request's client address for From. Install it
// before anything that limits, logs or audits by address.
func (r *Resolver) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		r.Store(c)
		return c.Next()
	}
}

// Store resolves the client address of c and keeps it for From, for a
// request answered outside the middleware chain.
func (r *Resolver) Store(c *fiber.Ctx) string {
	a := r.resolve(c)
	// A pointer goes into Locals without an allocation; a string would not.
	c.Locals(localsKey{}, a)
	return *a
}

// From returns the client address Middleware stored, or the connection's
// peer address when it did not run (a refusal before any middleware, a bare
// test app).
func From(c *fiber.Ctx) string {
	if a, ok := c.Locals(localsKey{}).(*string); ok {
		return *a
	}
	return peer(c).String()
}

// Resolve computes the client address of c (see the package documentation).
func (r *Resolver) Resolve(c *fiber.Ctx) string { return *r.resolve(c) }

// resolve is Resolve; the text of an untrusted peer comes from r.texts.
func (r *Resolver) resolve(c *fiber.Ctx) *string {
	p := peer(c)
	if !r.trusts(p) {
		return r.texts.text(p)
	}
	var hops []string
	if xff := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor); len(xff) > 0 {
		hops = splitHops(xff, parseXFFHop)
	} else if fwd := c.Request().Header.PeekAll("Forwarded"); len(fwd) > 0 {
		hops = splitHops(fwd, parseForwardedHop)
	}
	client := p
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break
		}
		client = a.Unmap().WithZone("")
		if !r.trusts(client) {
			break
		}
	}
	text := client.String()
	return &text
}

// trusts reports whether a is inside a trusted network.
func (r *Resolver) trusts(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the connection's remote address.
func peer(c *fiber.Ctx) netip.Addr {
	ip := c.Context().RemoteIP()
	if a, ok := netip.AddrFromSlice(ip); ok {
		return a.Unmap()
	}
	return netip.IPv4Unspecified()
}

// splitHops returns the last maxHops hops of the header values, in order,
// as parse leaves them ("" for a hop it cannot read).
func splitHops(values [][]byte, parse func(string) string) []string {
	var hops []string
	for _, v := range values {
		for h := range strings.SplitSeq(string(v), ",") {
			hops = append(hops, parse(strings.TrimSpace(h)))
			if len(hops) > 2*maxHops {
				hops = append(hops[:0], hops[len(hops)-maxHops:]...)
			}
		}
	}
	if len(hops) > maxHops {
		hops = hops[len(hops)-maxHops:]
	}
	return hops
}

// parseXFFHop reads one X-Forwarded-For entry: an address, perhaps with a
// port or in brackets (some proxies write either).
func parseXFFHop(h string) string {
	return stripPort(h)
}

// parseForwardedHop reads the for= parameter of one Forwarded element.
func parseForwardedHop(element string) string {
	for pair := range strings.SplitSeq(element, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
			continue
		}
		return stripPort(strings.Trim(strings.TrimSpace(v), `"`))
	}
	return ""
}

// stripPort turns "1.2.3.4:80", "[2001:db8::1]:80" and "[2001:db8::1]"
// into the address alone; anything else is returned as it is.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			return h[1:end]
		}
		return h
	}
	if strings.Count(h, ":") == 1 {
		host, _, _ := strings.Cut(h, ":")
		return host
	}
	return h
}

// LimitKey returns the rate-limit identity of a client address: the address
// itself for IPv4, its /64 network for IPv6, since one IPv6 client is
// routinely given a whole /64 and could otherwise change address per request.
func LimitKey(addr string) string { return string(AppendLimitKey(make([]byte, 0, 3+len(addr)), addr)) }

// AppendLimitKey appends LimitKey(addr) to dst, without making a string.
func AppendLimitKey(dst []byte, addr string) []byte {
	dst = append(dst, "ip:"...)
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Is4() {
		return append(dst, addr...)
	}
	p, err := a.Prefix(64)
	if err != nil {
		return append(dst, addr...)
	}
	return p.AppendTo(dst)
}
