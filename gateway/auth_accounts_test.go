package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// fakeAppwrite answers GET /v1/account like Appwrite for the JWTs it knows,
// and 401 for the others.
func fakeAppwrite(t *testing.T, accounts map[string]auth.AppwriteUser) *auth.AppwriteVerifier {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acct, ok := accounts[r.Header.Get("X-Appwrite-JWT")]
		if !ok || r.Header.Get("X-Appwrite-Project") != "p1" || r.URL.Path != "/v1/account" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Invalid token passed in the request.","code":401}`))
			return
		}
		_ = json.NewEncoder(w).Encode(acct)
	}))
	t.Cleanup(srv.Close)
	v, err := auth.NewAppwriteVerifier(auth.AppwriteConfig{Endpoint: srv.URL + "/v1", ProjectID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAppwritePreHijackingOverHTTP replays the audit's attack: the attacker
// registers victim@corp.test with a password and no proof of the address;
// when the real owner signs in through Appwrite with that email verified,
// kowai linked the Appwrite identity to the attacker's account, which the
// attacker could still log in to and read. Now the sign-in is refused with
// a 409 saying how to link, nothing is linked, and the owner of an account
// links Appwrite from a session of their own.
func TestAppwritePreHijackingOverHTTP(t *testing.T) {
	verifier := fakeAppwrite(t, map[string]auth.AppwriteUser{
		"jwt-victim":     {ID: "aw-victim", Email: "Victim@Corp.test", Name: "Victim", Status: true, EmailVerification: true},
		"jwt-unverified": {ID: "aw-unverified", Email: "nobody-proved-this@corp.test", Status: true},
		"jwt-owner":      {ID: "aw-owner", Email: "owner@elsewhere.test", Status: true},
	})
	env := startREST(t, restConfig{appwrite: verifier})
	api := env.url + "/api/v1/auth"

	r := call(t, http.MethodPost, api+"/register", "", `{"email":"victim@corp.test","password":"the attacker's own password"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("attacker's registration: %d %s", r.status, r.body)
	}
	p := call(t, http.MethodPost, api+"/appwrite", "", `{"jwt":"jwt-victim"}`).problem(t, http.StatusConflict)
	if !strings.Contains(p.Detail, "/api/v1/auth/appwrite/link") {
		t.Fatalf("the 409 does not say how to link: %+v", p)
	}
	planted, err := env.stores.Users.GetByEmail(t.Context(), "victim@corp.test")
	if err != nil || planted.AppwriteID != "" {
		t.Fatalf("the planted account: %+v, %v; want it unlinked", planted, err)
	}
	// The attacker's password still opens only the attacker's own account,
	// which the victim's Appwrite identity never reaches.
	attacker := env.login(t, "victim@corp.test", "the attacker's own password")
	var me auth.PublicUser
	call(t, http.MethodGet, api+"/me", attacker.AccessToken, "").json(t, &me)
	if me.ID != planted.ID {
		t.Fatalf("attacker is %s, want %s", me.ID, planted.ID)
	}

	call(t, http.MethodPost, api+"/appwrite", "", `{"jwt":"jwt-unverified"}`).problem(t, http.StatusForbidden)
	if _, err := env.stores.Users.GetByEmail(t.Context(), "nobody-proved-this@corp.test"); err == nil {
		t.Fatal("an unverified Appwrite email made an account")
	}

	// Explicit linking, from the owner's own session.
	owner := env.newUser(t, "owner@corp.test")
	call(t, http.MethodPost, api+"/appwrite/link", "", `{"jwt":"jwt-owner"}`).problem(t, http.StatusUnauthorized)
	call(t, http.MethodPost, api+"/appwrite/link", owner.pair.AccessToken, `{"jwt":"forged"}`).problem(t, http.StatusUnauthorized)
	call(t, http.MethodPost, api+"/appwrite/link", owner.pair.AccessToken, `{}`).problem(t, http.StatusBadRequest)
	r = call(t, http.MethodPost, api+"/appwrite/link", owner.pair.AccessToken, `{"jwt":"jwt-owner"}`)
	if r.status != http.StatusOK {
		t.Fatalf("link: %d %s", r.status, r.body)
	}
	var linked auth.PublicUser
	r.json(t, &linked)
	if linked.ID != owner.id {
		t.Fatalf("linked %+v, want the caller %s", linked, owner.id)
	}
	call(t, http.MethodPost, api+"/appwrite/link", attacker.AccessToken, `{"jwt":"jwt-owner"}`).problem(t, http.StatusConflict)
	var pair auth.TokenPair
	call(t, http.MethodPost, api+"/appwrite", "", `{"jwt":"jwt-owner"}`).json(t, &pair)
	call(t, http.MethodGet, api+"/me", pair.AccessToken, "").json(t, &me)
	if me.ID != owner.id {
		t.Fatalf("appwrite sign-in after linking is %s, want %s", me.ID, owner.id)
	}
}

// auditActions returns the actions of the audit log, oldest first, with the
// entries themselves.
func auditActions(t *testing.T, log persistence.AuditLog) ([]string, []persistence.AuditEntry) {
	t.Helper()
	page, err := log.List(t.Context(), persistence.PageRequest{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(page.Items)
	var actions []string
	for _, e := range page.Items {
		actions = append(actions, e.Action)
	}
	return actions, page.Items
}

// TestAuditLogCoversAuthAndAgents: the audit log used to hold only role
// changes and deletions. Logins (both ways), logouts, a refresh token's
// reuse, an Appwrite link, a password change and agent changes are now recorded, with the
// actor, the target and the client address.
func TestAuditLogCoversAuthAndAgents(t *testing.T) {
	verifier := fakeAppwrite(t, map[string]auth.AppwriteUser{"jwt-a": {ID: "aw-a", Email: "a@elsewhere.test", Status: true}})
	env := startREST(t, restConfig{appwrite: verifier})
	api := env.url + "/api/v1"
	must := func(r reply, status int) reply {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
		}
		return r
	}
	must(call(t, http.MethodPost, api+"/auth/register", "", `{"email":"audit@example.com","password":"correct horse battery"}`), http.StatusCreated)
	call(t, http.MethodPost, api+"/auth/login", "", `{"email":"audit@example.com","password":"a wrong password"}`).problem(t, http.StatusUnauthorized)
	call(t, http.MethodPost, api+"/auth/login", "", `{"email":"ghost@example.com","password":"a wrong password"}`).problem(t, http.StatusUnauthorized)
	first := env.login(t, "audit@example.com", "correct horse battery")
	var second auth.TokenPair
	must(call(t, http.MethodPost, api+"/auth/refresh", "", `{"refresh_token":"`+first.RefreshToken+`"}`), http.StatusOK).json(t, &second)
	call(t, http.MethodPost, api+"/auth/refresh", "", `{"refresh_token":"`+first.RefreshToken+`"}`).problem(t, http.StatusUnauthorized)
	tok := env.login(t, "audit@example.com", "correct horse battery").AccessToken
	must(call(t, http.MethodPost, api+"/auth/appwrite/link", tok, `{"jwt":"jwt-a"}`), http.StatusOK)
	var ag agentView
	must(call(t, http.MethodPost, api+"/agents", tok, `{"name":"Audited","type":"chat"}`), http.StatusCreated).json(t, &ag)
	must(call(t, http.MethodPut, api+"/agents/"+ag.ID, tok, fmt.Sprintf(`{"name":"Renamed","type":"chat","instructions":"","signature":"","model":"","config":{},"version":%d}`, ag.Version)), http.StatusOK)
	must(call(t, http.MethodDelete, api+"/agents/"+ag.ID, tok, ""), http.StatusNoContent)
	must(call(t, http.MethodPost, api+"/auth/password", tok, `{"current_password":"correct horse battery","new_password":"a new and longer one"}`), http.StatusNoContent)
	must(call(t, http.MethodPost, api+"/auth/logout", tok, ""), http.StatusNoContent)

	actions, entries := auditActions(t, env.stores.Audit)
	want := []string{
		auth.AuditUserCreate, auth.AuditLoginFailed, auth.AuditLoginFailed, auth.AuditLogin, auth.AuditRefreshReuse, auth.AuditLogin,
		auth.AuditAppwriteLink, auditAgentCreate, auditAgentUpdate, auditAgentDelete, auth.AuditPasswordChange, auth.AuditLogout,
	}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit actions\n got %v\nwant %v", actions, want)
	}
	u, err := env.stores.Users.GetByEmail(t.Context(), "audit@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		wantActor := u.ID
		if i == 2 { // the login of an unknown email names no account
			wantActor = ""
		}
		if e.ActorID != wantActor || e.IP != "127.0.0.1" {
			t.Errorf("entry %d %s: actor %q ip %q, want actor %q from 127.0.0.1", i, e.Action, e.ActorID, e.IP, wantActor)
		}
	}
	var detail map[string]string
	if err := json.Unmarshal(entries[1].Detail, &detail); err != nil || detail["reason"] != "invalid_credentials" || detail["email"] != "" {
		t.Errorf("failed login of a known account: detail %s, %v", entries[1].Detail, err)
	}
	// The typed email of an unknown account is not kept: people type passwords into it.
	detail = nil
	if err := json.Unmarshal(entries[2].Detail, &detail); err != nil || detail["reason"] != "invalid_credentials" || detail["email"] != "" {
		t.Errorf("failed login of an unknown email: detail %s, %v", entries[2].Detail, err)
	}
	if e := entries[7]; e.TargetType != "agent" || e.TargetID != ag.ID {
		t.Errorf("agent entry targets %s %s, want agent %s", e.TargetType, e.TargetID, ag.ID)
	}
	for _, e := range entries {
		if strings.Contains(string(e.Detail), "correct horse") || strings.Contains(string(e.Detail), "wrong password") {
			t.Errorf("entry %s holds a password: %s", e.Action, e.Detail)
		}
	}
}

// callFrom sends one JSON request from the loopback address ip (any of
// 127.0.0.0/8), so the server sees that client address.
func callFrom(t *testing.T, ip, method, url, body string) reply {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
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

func loginBody(email, password string) string {
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return string(b)
}

// newThrottle is the production login throttle (default limits) over an
// in-process limiter.
func newThrottle(t *testing.T) *auth.Throttle {
	t.Helper()
	th, err := auth.NewThrottle(auth.ThrottleConfig{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// TestLoginThrottleAccentVariantsOverHTTP replays the audit's finding on
// MariaDB: the email column's collation ignored accents and case, so once
// the throttle refused "victim@corp.test", "víctim@corp.test" went on
// guessing the same account under a fresh throttle key, and the right
// password logged in to the victim's account. Now an accented address is
// another address, and every spelling of one account shares its throttle.
func TestLoginThrottleAccentVariantsOverHTTP(t *testing.T) {
	for _, dialect := range []struct {
		name string
		open func(testing.TB) *persistence.DB
	}{{"sqlite", persisttest.SQLite}, {"mysql", persisttest.MySQL}} {
		t.Run(dialect.name, func(t *testing.T) {
			env := startREST(t, restConfig{db: dialect.open(t), throttle: newThrottle(t)})
			login := env.url + "/api/v1/auth/login"
			const attacker, password = "127.0.0.2", "the victim's real password"
			must := func(r reply, status int) {
				t.Helper()
				if r.status != status {
					t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
				}
			}
			must(call(t, http.MethodPost, env.url+"/api/v1/auth/register", "", loginBody("victim@corp.test", password)), http.StatusCreated)
			for range 10 {
				must(callFrom(t, attacker, http.MethodPost, login, loginBody("victim@corp.test", "a wrong guess")), http.StatusUnauthorized)
			}
			must(callFrom(t, attacker, http.MethodPost, login, loginBody("victim@corp.test", password)), http.StatusTooManyRequests)
			for _, same := range []string{"VICTIM@corp.test", "Victim@Corp.Test", "ｖｉｃｔｉｍ@corp.test"} {
				must(callFrom(t, attacker, http.MethodPost, login, loginBody(same, password)), http.StatusTooManyRequests)
			}
			for _, other := range []string{"víctim@corp.test", "VÍCTIM@corp.test", "victim@córp.test"} {
				r := callFrom(t, attacker, http.MethodPost, login, loginBody(other, password))
				if r.status == http.StatusOK {
					t.Fatalf("%s with the victim's password logged in past the throttle: %s", other, r.body)
				}
				must(r, http.StatusUnauthorized)
			}
		})
	}
}

// TestLoginThrottleDoesNotLockOutTheOwnerOverHTTP replays the audit's
// finding: ten wrong guesses from other addresses locked the real owner out
// for three minutes. Guesses now count per (account, address) first, under
// a per-account ceiling ten times higher.
func TestLoginThrottleDoesNotLockOutTheOwnerOverHTTP(t *testing.T) {
	env := startREST(t, restConfig{throttle: newThrottle(t)})
	login := env.url + "/api/v1/auth/login"
	const owner, password = "127.0.0.1", "the owner's real password"
	if r := call(t, http.MethodPost, env.url+"/api/v1/auth/register", "", loginBody("owner@corp.test", password)); r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	guess := func(ip string) int {
		return callFrom(t, ip, http.MethodPost, login, loginBody("owner@corp.test", "a wrong guess")).status
	}
	// One attacker address spends its own ten attempts, then is refused.
	for i := range 10 {
		if s := guess("127.0.0.2"); s != http.StatusUnauthorized {
			t.Fatalf("guess %d from one address: %d, want 401", i+1, s)
		}
	}
	if s := guess("127.0.0.2"); s != http.StatusTooManyRequests {
		t.Fatalf("11th guess from one address: %d, want 429", s)
	}
	// Rotating addresses, one guess each: under the per-account ceiling.
	for i := range 20 {
		guess(fmt.Sprintf("127.0.1.%d", i+1))
	}
	r := callFrom(t, owner, http.MethodPost, login, loginBody("owner@corp.test", password))
	if r.status != http.StatusOK {
		t.Fatalf("the owner after 30 guesses from other addresses: %d %s; want a login", r.status, r.body)
	}
}

// TestPasswordChangeRefusesWeakPasswords: the password change applies the
// same policy as registration (auth.CheckPassword), reported on
// new_password, and changes nothing when it refuses.
func TestPasswordChangeRefusesWeakPasswords(t *testing.T) {
	env := startREST(t, restConfig{})
	u := env.newUser(t, "change.my.password@example.com")
	for _, tc := range []struct{ pw, says string }{
		{"12345678", "at least 12 characters"},
		{"qwerty123456", "most common"},
		{"aaaaaaaaaaaa", "repeated"},
		{"CHANGE.MY.PASSWORD", "email"},
	} {
		body, _ := json.Marshal(map[string]string{"current_password": u.password, "new_password": tc.pw})
		p := call(t, http.MethodPost, env.url+"/api/v1/auth/password", u.pair.AccessToken, string(body)).problem(t, http.StatusBadRequest)
		if len(p.Errors) != 1 || p.Errors[0].Field != "new_password" || !strings.Contains(p.Errors[0].Message, tc.says) {
			t.Errorf("new password %q: field errors %+v, want one on new_password saying %q", tc.pw, p.Errors, tc.says)
		}
	}
	env.login(t, u.email, u.password)
}
