package clientaddr_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/kowai/kowai/gateway/clientaddr"
)

// resolve runs r over a request from peer carrying header (name, value pairs).
func resolve(t *testing.T, r *clientaddr.Resolver, peer string, header ...string) string {
	t.Helper()
	app := fiber.New()
	var req fasthttp.Request
	req.SetRequestURI("/")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	var fctx fasthttp.RequestCtx
	fctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(peer), Port: 40000}, nil)
	c := app.AcquireCtx(&fctx)
	defer app.ReleaseCtx(c)
	return r.Resolve(c)
}

func TestResolve(t *testing.T) {
	proxies := clientaddr.New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")})
	nobody := clientaddr.New(nil)
	const xff, fwd = "X-Forwarded-For", "Forwarded"
	for _, tc := range []struct {
		name   string
		r      *clientaddr.Resolver
		peer   string
		header []string
		want   string
	}{
		{"no proxy trusted: a forged header is ignored", nobody, "203.0.113.9", []string{xff, "1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer: forged header ignored", proxies, "203.0.113.9", []string{xff, "1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer: forged Forwarded ignored", proxies, "203.0.113.9", []string{fwd, "for=1.2.3.4"}, "203.0.113.9"},
		{"trusted peer without header", proxies, "10.0.0.2", nil, "10.0.0.2"},
		{"trusted peer, one hop", proxies, "10.0.0.2", []string{xff, "198.51.100.7"}, "198.51.100.7"},
		{"client-forged left part is skipped", proxies, "10.0.0.2", []string{xff, "1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"trusted hops are skipped right to left", proxies, "10.0.0.2", []string{xff, "1.2.3.4, 198.51.100.7, 10.1.1.1, 10.2.2.2"}, "198.51.100.7"},
		{"two header lines join in order", proxies, "10.0.0.2", []string{xff, "1.2.3.4", xff, "198.51.100.7, 10.1.1.1"}, "198.51.100.7"},
		{"every hop trusted: the leftmost", proxies, "10.0.0.2", []string{xff, "10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"garbage hop stops at the trusted hop after it", proxies, "10.0.0.2", []string{xff, "1.2.3.4, not-an-ip, 10.1.1.1"}, "10.1.1.1"},
		{"garbage from the peer itself", proxies, "10.0.0.2", []string{xff, "<script>"}, "10.0.0.2"},
		{"port and brackets", proxies, "10.0.0.2", []string{xff, "198.51.100.7:5555"}, "198.51.100.7"},
		{"IPv6 hop", proxies, "10.0.0.2", []string{xff, "[2001:db8:2::5]:443"}, "2001:db8:2::5"},
		{"IPv4-mapped IPv6 hop", proxies, "10.0.0.2", []string{xff, "::ffff:198.51.100.7"}, "198.51.100.7"},
		{"IPv6 trusted peer", proxies, "2001:db8:1::1", []string{xff, "198.51.100.7"}, "198.51.100.7"},
		{"Forwarded when no X-Forwarded-For", proxies, "10.0.0.2", []string{fwd, `for=1.2.3.4, for="[2001:db8:2::5]:4711";proto=https, for=10.1.1.1`}, "2001:db8:2::5"},
		{"Forwarded obfuscated hop", proxies, "10.0.0.2", []string{fwd, "for=_hidden"}, "10.0.0.2"},
		{"X-Forwarded-For wins over Forwarded", proxies, "10.0.0.2", []string{fwd, "for=1.2.3.4", xff, "198.51.100.7"}, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(t, tc.r, tc.peer, tc.header...); got != tc.want {
				t.Fatalf("client address %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFromIPNets(t *testing.T) {
	var nets []*net.IPNet
	for _, s := range []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128", "2001:db8::/32"} {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, n)
	}
	// net.ParseIP keeps IPv4 in 16 bytes; the mask says how long it is.
	nets = append(nets, &net.IPNet{IP: net.ParseIP("192.168.0.0"), Mask: net.CIDRMask(112, 128)})
	got := clientaddr.FromIPNets(nets)
	want := []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128", "2001:db8::/32", "192.168.0.0/16"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("prefix %d: %s, want %s", i, got[i], want[i])
		}
	}
}

func TestLimitKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"198.51.100.7", "ip:198.51.100.7"},
		{"2001:db8:2::5", "ip:2001:db8:2::/64"},
		{"2001:db8:2::ffff:1", "ip:2001:db8:2::/64"},
		{"not-an-ip", "ip:not-an-ip"},
	} {
		if got := clientaddr.LimitKey(tc.addr); got != tc.want {
			t.Errorf("LimitKey(%q) = %q, want %q", tc.addr, got, tc.want)
		}
		if got := string(clientaddr.AppendLimitKey([]byte("x|"), tc.addr)); got != "x|"+tc.want {
			t.Errorf("AppendLimitKey(%q) = %q, want %q", tc.addr, got, "x|"+tc.want)
		}
	}
}

// Peers' texts are cached; peers that share a cache slot each get their own.
func TestResolveManyPeers(t *testing.T) {
	r := clientaddr.New(nil)
	var peers []string
	for i := range 600 {
		peers = append(peers, fmt.Sprintf("10.%d.%d.%d", i/256, i%256, i%7), fmt.Sprintf("2001:db8::%x", i))
	}
	for round := range 2 {
		for _, p := range peers {
			if got := resolve(t, r, p); got != net.ParseIP(p).String() {
				t.Fatalf("round %d: peer %s resolved to %s", round, p, got)
			}
		}
	}
}
