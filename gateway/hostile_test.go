package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

func TestAuthLifecycle(t *testing.T) {
	env := startREST(t, restConfig{})
	api := env.url + "/api/v1/auth"
	r := call(t, http.MethodPost, api+"/register", "", `{"email":"life@example.com","password":"a long password","name":"Life"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	var registered auth.PublicUser
	r.json(t, &registered)

	first := env.login(t, "life@example.com", "a long password")
	if first.TokenType != "Bearer" || first.ExpiresIn != int64((15*time.Minute)/time.Second) || first.RefreshToken == "" {
		t.Fatalf("login pair %+v", first)
	}
	var me auth.PublicUser
	call(t, http.MethodGet, api+"/me", first.AccessToken, "").json(t, &me)
	if me.ID != registered.ID || me.Email != "life@example.com" {
		t.Fatalf("me %+v, registered %+v", me, registered)
	}
	call(t, http.MethodPost, api+"/login", "", `{"email":"life@example.com","password":"a wrong password"}`).problem(t, http.StatusUnauthorized)

	refresh := func(token string) reply {
		return call(t, http.MethodPost, api+"/refresh", "", `{"refresh_token":"`+token+`"}`)
	}
	var second, third auth.TokenPair
	refresh(first.RefreshToken).json(t, &second)
	if second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
		t.Fatalf("refresh returned %+v", second)
	}
	refresh(second.RefreshToken).json(t, &third)
	if r := call(t, http.MethodGet, api+"/me", third.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("me with refreshed token: %d", r.status)
	}

	// Presenting a spent refresh token revokes the session: every token of
	// it stops working at once.
	p := refresh(first.RefreshToken).problem(t, http.StatusUnauthorized)
	if !strings.Contains(p.Detail, "reused") {
		t.Fatalf("reuse detail %q", p.Detail)
	}
	call(t, http.MethodGet, api+"/me", third.AccessToken, "").problem(t, http.StatusUnauthorized)
	refresh(third.RefreshToken).problem(t, http.StatusUnauthorized)

	// Logout does the same for a fresh session, and only for it.
	fourth := env.login(t, "life@example.com", "a long password")
	other := env.login(t, "life@example.com", "a long password")
	if r := call(t, http.MethodPost, api+"/logout", fourth.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	call(t, http.MethodGet, api+"/me", fourth.AccessToken, "").problem(t, http.StatusUnauthorized)
	refresh(fourth.RefreshToken).problem(t, http.StatusUnauthorized)
	call(t, http.MethodPost, api+"/logout", fourth.AccessToken, "").problem(t, http.StatusUnauthorized)
	if r := call(t, http.MethodGet, api+"/me", other.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("logout of one session ended another: %d", r.status)
	}
}

// dbDigest fingerprints every table's rows, so a test can prove that a
// request changed nothing at all, not only that no row was added.
func dbDigest(t *testing.T, db *persistence.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range []string{"users", "auth_sessions", "refresh_tokens", "agents", "conversations", "messages",
		"feedback", "snapshots", "workflow_runs", "workflow_steps", "workflow_events", "user_profiles", "audit_log"} {
		// The table names are constants of this test.
		rows, err := db.SQL.QueryContext(t.Context(), "SELECT * FROM "+table+" ORDER BY 1, 2")
		if err != nil {
			t.Fatalf("digest %s: %v", table, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		h, n := sha256.New(), 0
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(h, "%d:%s|", len(v), v)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		out[table] = fmt.Sprintf("%d rows, %s", n, hex.EncodeToString(h.Sum(nil))[:16])
	}
	return out
}

// forge signs claims derived from a valid token's with key and method.
func forge(t *testing.T, method jwt.SigningMethod, key any, base auth.Claims, edit func(*auth.Claims)) string {
	t.Helper()
	c := base
	if edit != nil {
		edit(&c)
	}
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHostileRequests(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	mallory := env.newUser(t, "mallory@example.com")
	// An admin's mistakes must be refused too.
	admin := env.newUser(t, "admin@example.com", auth.RoleAdmin)
	conv, msgs := env.seedConversation(t, alice.id, 2)
	agent := call(t, http.MethodPost, env.url+"/api/v1/agents", alice.pair.AccessToken, `{"name":"A","type":"chat"}`)
	var alicesAgent agentView
	agent.json(t, &alicesAgent)

	// A revoked session, and a refresh token spent in a session that reuse
	// has already revoked (presenting it again changes nothing more).
	revoked := env.login(t, mallory.email, mallory.password)
	call(t, http.MethodPost, env.url+"/api/v1/auth/logout", revoked.AccessToken, "")
	spentSession := env.login(t, mallory.email, mallory.password)
	call(t, http.MethodPost, env.url+"/api/v1/auth/refresh", "", `{"refresh_token":"`+spentSession.RefreshToken+`"}`)
	call(t, http.MethodPost, env.url+"/api/v1/auth/refresh", "", `{"refresh_token":"`+spentSession.RefreshToken+`"}`).problem(t, http.StatusUnauthorized)

	now := time.Now()
	valid := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "kowai", Subject: mallory.id, Audience: jwt.ClaimStrings{"kowai"},
			ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now),
			ID: uuid.NewString()},
		Roles: []auth.Role{auth.RoleUser}, SessionID: uuid.NewString(),
	}
	if _, err := jwt.ParseWithClaims(mallory.pair.AccessToken, &valid, func(*jwt.Token) (any, error) { return testJWTSecret, nil }); err != nil {
		t.Fatal(err)
	}
	hs := func(edit func(*auth.Claims)) string {
		return forge(t, jwt.SigningMethodHS256, testJWTSecret, valid, edit)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	parts := strings.Split(mallory.pair.AccessToken, ".")
	sig := []byte(parts[2])
	sig[len(sig)/2] ^= 1
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	escalated := parts[0] + "." + strings.TrimRight(jwtSegment(t, hs(func(c *auth.Claims) { c.Roles = []auth.Role{auth.RoleAdmin} }), 1), "=") + "." + parts[2]

	const sqlish = `x' OR '1'='1'; DROP TABLE users; --`
	huge := `{"email":"` + strings.Repeat("a", 2<<20) + `","password":"p"}`
	otherMsg := msgs[1].ID
	mTok := mallory.pair.AccessToken

	type hostile struct {
		name, method, path, token, contentType, body string
		status                                       int
	}
	json := "application/json"
	cases := []hostile{
		// Malformed bodies.
		{"bad JSON", "POST", "/api/v1/auth/login", "", json, `{"email":`, 400},
		{"huge body", "POST", "/api/v1/auth/login", "", json, huge, 413},
		{"wrong types", "POST", "/api/v1/auth/login", "", json, `{"email":1,"password":true}`, 400},
		{"unknown field", "POST", "/api/v1/auth/register", "", json, `{"email":"n@example.com","password":"long enough pw","roles":["admin"]}`, 400},
		{"two objects", "POST", "/api/v1/auth/login", "", json, `{}{}`, 400},
		{"array body", "POST", "/api/v1/chat/feedback", mTok, json, `[]`, 400},
		{"empty body", "POST", "/api/v1/auth/refresh", "", json, ``, 400},
		{"not JSON content type", "POST", "/api/v1/auth/login", "", "text/plain", `{"email":"a@b.c","password":"x"}`, 415},
		{"invalid UTF-8 body", "POST", "/api/v1/auth/login", "", json, "{\"email\":\"\xff\xfe@example.com\",\"password\":\"x\"}", 400},
		{"rating as a string", "POST", "/api/v1/chat/feedback", mTok, json, `{"message_id":"` + otherMsg + `","rating":"1"}`, 400},
		{"rating out of range", "POST", "/api/v1/chat/feedback", mTok, json, `{"message_id":"` + otherMsg + `","rating":5}`, 400},
		{"deeply nested config", "POST", "/api/v1/agents", mTok, json, `{"name":"n","type":"chat","config":` + strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat(`}`, 20000) + `}`, 400},
		{"NUL in agent name", "POST", "/api/v1/agents", mTok, json, `{"name":"a\u0000b","type":"chat"}`, 400},
		// Tokens.
		{"no token", "GET", "/api/v1/auth/me", "", "", "", 401},
		{"garbage token", "GET", "/api/v1/auth/me", "not.a.jwt", "", "", 401},
		{"alg none", "GET", "/api/v1/auth/me", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid, nil), "", "", 401},
		{"RS256 token", "GET", "/api/v1/auth/me", forge(t, jwt.SigningMethodRS256, rsaKey, valid, nil), "", "", 401},
		{"HS256 keyed with the RSA public key", "GET", "/api/v1/auth/me", forge(t, jwt.SigningMethodHS256, pubPEM, valid, nil), "", "", 401},
		{"HS512 with the right secret", "GET", "/api/v1/auth/me", forge(t, jwt.SigningMethodHS512, testJWTSecret, valid, nil), "", "", 401},
		{"expired", "GET", "/api/v1/auth/me", hs(func(c *auth.Claims) {
			c.ExpiresAt, c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now.Add(-time.Hour)), jwt.NewNumericDate(now.Add(-2*time.Hour)), jwt.NewNumericDate(now.Add(-2*time.Hour))
		}), "", "", 401},
		{"not yet valid", "GET", "/api/v1/auth/me", hs(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }), "", "", 401},
		{"issued in the future", "GET", "/api/v1/auth/me", hs(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }), "", "", 401},
		{"wrong audience", "GET", "/api/v1/auth/me", hs(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }), "", "", 401},
		{"wrong issuer", "GET", "/api/v1/auth/me", hs(func(c *auth.Claims) { c.Issuer = "evil" }), "", "", 401},
		{"no session id", "GET", "/api/v1/auth/me", hs(func(c *auth.Claims) { c.SessionID = "" }), "", "", 401},
		{"no expiry", "GET", "/api/v1/auth/me", hs(func(c *auth.Claims) { c.ExpiresAt = nil }), "", "", 401},
		{"tampered signature", "GET", "/api/v1/auth/me", tampered, "", "", 401},
		{"roles edited under the old signature", "GET", "/api/v1/admin/users", escalated, "", "", 401},
		{"revoked session", "GET", "/api/v1/auth/me", revoked.AccessToken, "", "", 401},
		{"reused refresh token", "POST", "/api/v1/auth/refresh", "", json, `{"refresh_token":"` + spentSession.RefreshToken + `"}`, 401},
		// Other users' data.
		{"another user's conversation", "GET", "/api/v1/chat/history?conversation_id=" + conv.ID, mTok, "", "", 404},
		{"feedback on another user's message", "POST", "/api/v1/chat/feedback", mTok, json, `{"message_id":"` + otherMsg + `","rating":1,"comment":"` + sqlish + `"}`, 404},
		{"another user's agent", "PUT", "/api/v1/agents/" + alicesAgent.ID, mTok, json, `{"name":"mine now","type":"chat","instructions":"","signature":"","model":"","config":{},"version":1}`, 404},
		{"admin route as a user", "PUT", "/api/v1/admin/users/" + mallory.id + "/roles", mTok, json, `{"roles":["admin"]}`, 403},
		// SQL metacharacters in every string field.
		{"SQL in login email", "POST", "/api/v1/auth/login", "", json, `{"email":"` + sqlish + `","password":"` + sqlish + `"}`, 401},
		{"SQL in register fields", "POST", "/api/v1/auth/register", "", json, `{"email":"` + sqlish + `@example.com","password":"short","name":"` + sqlish + `"}`, 400},
		{"SQL in refresh token", "POST", "/api/v1/auth/refresh", "", json, `{"refresh_token":"` + sqlish + `"}`, 401},
		{"SQL in appwrite jwt", "POST", "/api/v1/auth/appwrite", "", json, `{"jwt":"` + sqlish + `"}`, 404},
		{"SQL in message id", "POST", "/api/v1/chat/feedback", mTok, json, `{"message_id":"` + sqlish + `","rating":1}`, 400},
		{"SQL in agent fields", "POST", "/api/v1/agents", mTok, json, `{"name":"` + sqlish + `","type":"` + sqlish + `","instructions":"` + sqlish + `","signature":"` + sqlish + `","model":"` + sqlish + `"}`, 400},
		{"SQL in roles", "PUT", "/api/v1/admin/users/" + mallory.id + "/roles", admin.pair.AccessToken, json, `{"roles":["` + sqlish + `"]}`, 400},
		{"SQL in conversation id", "GET", "/api/v1/chat/history?conversation_id=x%27%20OR%20%271%27%3D%271", mTok, "", "", 400},
		{"SQL in cursor", "GET", "/api/v1/chat/conversations?cursor=x%27%20OR%201%3D1--", mTok, "", "", 400},
		{"SQL in limit", "GET", "/api/v1/agents?limit=1%3B%20DROP%20TABLE%20agents", mTok, "", "", 400},
		{"invalid UTF-8 in a query", "GET", "/api/v1/chat/history?conversation_id=%ff%fe", mTok, "", "", 400},
		// Path tricks in IDs.
		{"dot-dot in an agent id", "GET", "/api/v1/agents/..%2F..%2Fadmin%2Fusers", mTok, "", "", 400},
		{"encoded dots", "DELETE", "/api/v1/agents/%2e%2e", mTok, "", "", 400},
		{"encoded slash", "DELETE", "/api/v1/admin/users/" + alice.id + "%2F..%2F" + admin.id, admin.pair.AccessToken, "", "", 400},
		{"encoded slash on a route without that method", "PUT", "/api/v1/admin/users/" + alice.id + "%2Froles", admin.pair.AccessToken, json, `{"roles":["user"]}`, 405},
		{"SQL in a path id", "DELETE", "/api/v1/agents/1%27%20OR%20%271%27%3D%271", mTok, "", "", 400},
		{"run id traversal", "GET", "/api/v1/workflows/..%2F..%2Fetc%2Fpasswd/status", mTok, "", "", 400},
	}
	before := dbDigest(t, env.db)
	_, auditBefore := auditActions(t, env.stores.Audit)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body *strings.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, env.url+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				req, err = http.NewRequest(tc.method, env.url+tc.path, body)
				if err != nil {
					t.Fatal(err)
				}
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			r := do(t, req)
			p := r.problem(t, tc.status)
			if r.header.Get("X-Request-ID") != p.CorrelationID {
				t.Fatalf("X-Request-ID %q, problem correlation_id %q", r.header.Get("X-Request-ID"), p.CorrelationID)
			}
			if strings.Contains(string(r.body), "goroutine") || strings.Contains(strings.ToLower(p.Detail), "sql") {
				t.Fatalf("the problem leaks internals: %s", r.body)
			}
		})
	}
	if len(cases) < 30 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	after := dbDigest(t, env.db)
	// Refused logins and the reuse of a spent refresh token are recorded in
	// the audit log, and nothing else is.
	_, auditAfter := auditActions(t, env.stores.Audit)
	for _, e := range auditAfter[len(auditBefore):] {
		if e.Action != auth.AuditLoginFailed && e.Action != auth.AuditRefreshReuse {
			t.Errorf("a hostile request left an audit entry %s", e.Action)
		}
	}
	for table, digest := range before {
		if table == "audit_log" {
			continue
		}
		if after[table] != digest {
			t.Errorf("table %s changed: %s before, %s after", table, digest, after[table])
		}
	}
	// The strings that were refused above are stored verbatim when valid.
	r := call(t, http.MethodPost, env.url+"/api/v1/agents", mTok, `{"name":"`+sqlish+`","type":"chat","instructions":"`+sqlish+`"}`)
	var stored agentView
	r.json(t, &stored)
	if r.status != http.StatusCreated || stored.Name != sqlish || stored.Instructions != sqlish {
		t.Fatalf("SQL metacharacters not stored verbatim: %d %s", r.status, r.body)
	}
}

// jwtSegment returns segment i of the token.
func jwtSegment(t *testing.T, token string, i int) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments", token, len(parts))
	}
	return parts[i]
}
