package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/persistence"
)

// clientFrom returns an HTTP client whose connections come from the
// loopback address from (127.0.0.0/8 is all local on Linux), so one test can
// be several clients.
func clientFrom(t *testing.T, from string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// send makes one request with c; header holds name, value pairs.
func send(t *testing.T, c *http.Client, method, url, token string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: res.StatusCode, header: res.Header, body: b}
}

// TestAnonymousLimits: requests without accepted credentials (health,
// unknown routes, missing or refused tokens) share one bucket per client
// address at the default limit; once it is spent they get 429, while a
// valid token from the same address still works.
func TestAnonymousLimits(t *testing.T) {
	env := startREST(t, restConfig{rateLimit: ratelimit.Limit{Rate: 3, Period: time.Hour}})
	me := env.url + "/api/v1/auth/me"
	const garbage = "not-a-token-but-secret-looking"
	for _, tc := range []struct {
		name, from string
		method     string
		path       string
		token      string
		ok         int
	}{
		{"health", "127.0.0.2", http.MethodGet, "/health/live", "", http.StatusOK},
		{"invalid tokens", "127.0.0.3", http.MethodGet, "/api/v1/auth/me", garbage, http.StatusUnauthorized},
		{"missing tokens", "127.0.0.4", http.MethodGet, "/api/v1/chat/conversations", "", http.StatusUnauthorized},
		{"unknown routes", "127.0.0.5", http.MethodGet, "/no/such/route", "", http.StatusNotFound},
		{"wrong method", "127.0.0.6", http.MethodDelete, "/health", "", http.StatusMethodNotAllowed},
		{"API documents", "127.0.0.7", http.MethodGet, "/openapi.json", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A user of its own: the per-user limit is as small.
			u := env.newUser(t, "user-"+tc.from+"@example.com")
			c := clientFrom(t, tc.from)
			for i := range 3 {
				if r := send(t, c, tc.method, env.url+tc.path, tc.token); r.status != tc.ok {
					t.Fatalf("request %d: %d %s", i, r.status, r.body)
				}
			}
			r := send(t, c, tc.method, env.url+tc.path, tc.token)
			r.problem(t, http.StatusTooManyRequests)
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After: %v", r.header)
			}
			// One bucket for every anonymous request of the address...
			send(t, c, http.MethodGet, me, garbage).problem(t, http.StatusTooManyRequests)
			send(t, c, http.MethodGet, env.url+"/health", "").problem(t, http.StatusTooManyRequests)
			// ...which valid credentials do not draw from.
			if r := send(t, c, http.MethodGet, me, u.pair.AccessToken); r.status != http.StatusOK {
				t.Fatalf("valid token after the anonymous bucket was spent: %d %s", r.status, r.body)
			}
		})
	}
	// Another address is not affected.
	if r := send(t, clientFrom(t, "127.0.0.9"), http.MethodGet, env.url+"/health/live", ""); r.status != http.StatusOK {
		t.Fatalf("another address: %d", r.status)
	}
	// Refused tokens are logged with the address, never the token.
	refused := false
	for _, line := range logLines(env.logs.String()) {
		refused = refused || line["msg"] == "authentication refused" && line["reason"] == "invalid_token" &&
			line["route"] == "/api/v1/auth/me" && line["client_addr"] == "127.0.0.3"
	}
	if !refused {
		t.Errorf("refused token not logged: %s", env.logs.String())
	}
	if strings.Contains(env.logs.String(), garbage) {
		t.Error("the refused token is in the log")
	}
}

// TestTrustedProxies replays requests through a proxy on 127.0.0.1: with
// the proxy trusted, each forwarded client has its own limits and its own
// address in the access log and audit entries; without it, or from a peer
// that is not the proxy, a forged X-Forwarded-For changes nothing.
func TestTrustedProxies(t *testing.T) {
	limit := ratelimit.Limit{Rate: 3, Period: time.Hour}
	trusted := startREST(t, restConfig{rateLimit: limit, trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	untrusted := startREST(t, restConfig{rateLimit: limit})
	proxy, outsider := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.2")
	health := func(env *restEnv, c *http.Client, xff string) int {
		return send(t, c, http.MethodGet, env.url+"/health/live", "", "X-Forwarded-For", xff).status
	}
	spend := func(env *restEnv, c *http.Client, xff string) {
		t.Helper()
		for i := range 3 {
			if s := health(env, c, xff); s != http.StatusOK {
				t.Fatalf("request %d for %q: %d", i, xff, s)
			}
		}
		if s := health(env, c, xff); s != http.StatusTooManyRequests {
			t.Fatalf("fourth request for %q: %d, want 429", xff, s)
		}
	}

	// Trusted proxy: the client a forged left part names is skipped, the
	// address the proxy appended counts.
	spend(trusted, proxy, "203.0.113.66, 198.51.100.1")
	if s := health(trusted, proxy, "198.51.100.2"); s != http.StatusOK {
		t.Fatalf("a second client behind the trusted proxy shares the first one's bucket: %d", s)
	}
	if s := health(trusted, proxy, "198.51.100.1, 127.0.0.1"); s != http.StatusTooManyRequests {
		t.Fatalf("a trusted hop hid the client: %d", s)
	}
	// A peer outside the trusted networks is its own client, whatever it forges.
	spend(trusted, outsider, "198.51.100.3")
	if s := health(trusted, outsider, "198.51.100.4"); s != http.StatusTooManyRequests {
		t.Fatalf("forged X-Forwarded-For from an untrusted peer was believed: %d", s)
	}
	// Nobody trusted: forged headers change nothing.
	spend(untrusted, proxy, "198.51.100.5")
	if s := health(untrusted, proxy, "198.51.100.6"); s != http.StatusTooManyRequests {
		t.Fatalf("forged X-Forwarded-For believed without trusted proxies: %d", s)
	}

	// The access log and the audit trail name the forwarded client.
	admin := trusted.newUser(t, "admin@example.com", auth.RoleAdmin)
	bob := trusted.newUser(t, "bob@example.com")
	req, err := http.NewRequest(http.MethodPut, trusted.url+"/api/v1/admin/users/"+bob.id+"/roles", strings.NewReader(`{"roles":["premium"]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin.pair.AccessToken)
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	res, err := proxy.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("set roles: %d", res.StatusCode)
	}
	entries, err := trusted.stores.Audit.List(t.Context(), persistence.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Sign-ins are audited too; the role change is the newest entry.
	if len(entries.Items) == 0 || entries.Items[0].Action != "user.roles.set" || entries.Items[0].IP != "198.51.100.7" {
		t.Fatalf("audit entries %+v", entries.Items)
	}
	// A session started through the proxy records the forwarded client.
	req, err = http.NewRequest(http.MethodPost, trusted.url+"/api/v1/auth/login", strings.NewReader(`{"email":"bob@example.com","password":"`+bob.password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "198.51.100.8")
	res, err = proxy.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pair auth.TokenPair
	if err := json.NewDecoder(res.Body).Decode(&pair); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var sessions struct {
		Sessions []struct {
			IP      string `json:"ip"`
			Current bool   `json:"current"`
		} `json:"sessions"`
	}
	call(t, http.MethodGet, trusted.url+"/api/v1/auth/sessions", pair.AccessToken, "").json(t, &sessions)
	recorded := ""
	for _, s := range sessions.Sessions {
		if s.Current {
			recorded = s.IP
		}
	}
	if recorded != "198.51.100.8" {
		t.Fatalf("the session recorded %q, want the forwarded client: %+v", recorded, sessions)
	}

	found := false
	for _, line := range logLines(trusted.logs.String()) {
		if line["msg"] == "http request" && line["route"] == "/api/v1/admin/users/:id/roles" {
			found = line["client_addr"] == "198.51.100.7"
		}
	}
	if !found {
		t.Fatal("the access log does not name the forwarded client")
	}
}

// logLines parses JSON log output, one object per line.
func logLines(logs string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(logs, "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil {
			out = append(out, line)
		}
	}
	return out
}
