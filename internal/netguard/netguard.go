// Package netguard keeps outbound requests that users direct (workflow webhooks)
// away from the node's own network: loopback, private, link-local, multicast and
// unspecified addresses are refused unless an operator allows their networks.
//
// # Two checks
//
// CheckURL resolves a URL's host when it is given (a clear error for the user), and
// Guard.Client's dialer checks the address it actually connects to (net.Dialer's
// Control runs after resolution, on every connection), so a name that resolves to a
// public address at the first check and to 127.0.0.1 at the second (DNS rebinding)
// is still refused.
//
//	g := netguard.New(nil) // public addresses only
//	if err := g.CheckURL(ctx, "https://hooks.example.com/kowai"); err != nil { ... }
//	res, err := g.Client(10 * time.Second).Do(req)
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrRefused reports a URL or address the guard does not let requests reach.
var ErrRefused = errors.New("netguard: address refused")

// notPublic are ranges that the netip predicates do not cover and that never hold
// a public web server: "this network", shared address space (carrier-grade NAT),
// benchmarking, reserved and broadcast, and the NAT64 prefix (which maps to IPv4
// addresses the guard would refuse).
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
}

// Guard decides which addresses outbound requests may reach.
type Guard struct {
	allow []*net.IPNet
}

// New returns a guard that lets requests reach public addresses, and addresses in
// allow (the operator's exceptions, e.g. 127.0.0.1/32 in tests).
func New(allow []*net.IPNet) *Guard { return &Guard{allow: allow} }

// Allowed reports whether a request may reach ip.
func (g *Guard) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, n := range g.allow {
		if n.Contains(ip.AsSlice()) {
			return true
		}
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// CheckURL checks that raw is an absolute http(s) URL without credentials whose
// host resolves only to addresses the guard allows. Errors wrap ErrRefused when an
// address is refused; their text is fit for the user.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return errors.New("must be an absolute http or https URL")
	}
	if u.User != nil {
		return errors.New("must not contain credentials")
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !g.Allowed(ip) {
			return refused(fmt.Sprintf("%s is a loopback, private, link-local or otherwise non-public address", host))
		}
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("host %s does not resolve", host)
	}
	for _, a := range addrs {
		if !g.Allowed(a) {
			return refused(fmt.Sprintf("%s resolves to %s, a loopback, private, link-local or otherwise non-public address", host, a.Unmap()))
		}
	}
	return nil
}

// refusedError is an ErrRefused whose text is only the reason, fit for a user.
type refusedError struct{ reason string }

func (e refusedError) Error() string        { return e.reason }
func (e refusedError) Is(target error) bool { return target == ErrRefused }

func refused(reason string) error { return refusedError{reason: reason} }

// Control is a net.Dialer Control function that refuses connections to addresses
// the guard does not allow.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRefused, address, err)
	}
	if !g.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrRefused, ap.Addr().Unmap())
	}
	return nil
}

// Client returns an HTTP client whose every connection goes through Control, that
// uses no proxy (a proxy would connect for it, unguarded) and follows no redirect
// (a redirect is the receiver's answer, not a new target). timeout bounds each
// request.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: g.Control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
