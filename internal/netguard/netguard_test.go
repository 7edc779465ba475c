package netguard

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestAllowed(t *testing.T) {
	g := New(nil)
	cases := []struct {
		ip   string
		want bool
	}{
		{"93.184.215.14", true},
		{"2606:4700::1111", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"fc00::1", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"100.64.0.1", false},
		{"255.255.255.255", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"::ffff:10.0.0.1", false},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
	}
	for _, c := range cases {
		if got := g.Allowed(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Allowed(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	_, lo, _ := net.ParseCIDR("127.0.0.1/32")
	if !New([]*net.IPNet{lo}).Allowed(netip.MustParseAddr("127.0.0.1")) {
		t.Error("an allowed network is refused")
	}
	if New([]*net.IPNet{lo}).Allowed(netip.MustParseAddr("127.0.0.2")) {
		t.Error("an address outside the allowed network is allowed")
	}
}

func TestCheckURL(t *testing.T) {
	g := New(nil)
	for _, raw := range []string{
		"http://127.0.0.1:8080/hook", "http://10.0.0.5/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
		"http://localhost/x", "http://[::ffff:127.0.0.1]/x",
	} {
		if err := g.CheckURL(t.Context(), raw); !errors.Is(err, ErrRefused) {
			t.Errorf("CheckURL(%s) = %v, want ErrRefused", raw, err)
		}
	}
	for _, raw := range []string{"ftp://example.com/x", "/relative", "http://", "http://user:pw@93.184.215.14/", "not a url"} {
		if err := g.CheckURL(t.Context(), raw); err == nil {
			t.Errorf("CheckURL(%s) accepted", raw)
		}
	}
	if err := g.CheckURL(t.Context(), "https://93.184.215.14/hook"); err != nil {
		t.Errorf("public URL refused: %v", err)
	}
}

// TestClientRefusesAtConnectTime: even a URL that was never checked (or whose name
// now resolves elsewhere) cannot reach a loopback server through the guarded client.
func TestClientRefusesAtConnectTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	_, err := New(nil).Client(2 * time.Second).Get(srv.URL)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("GET %s through the guard = %v, want ErrRefused", srv.URL, err)
	}
	_, lo, _ := net.ParseCIDR("127.0.0.1/32")
	res, err := New([]*net.IPNet{lo}).Client(2 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with 127.0.0.1 allowed: %v", err)
	}
	res.Body.Close()
}
