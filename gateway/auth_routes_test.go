package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// testJWTSecret signs the tokens of the REST test servers; tests that forge
// tokens use it too.
var testJWTSecret = []byte("kowai-test-secret-0123456789abcdef")

// restConfig varies the REST test server.
type restConfig struct {
	closedRegistration bool
	limiter            ratelimit.Limiter
	rateLimit          ratelimit.Limit
	authRateLimit      ratelimit.Limit
	appwrite           *auth.AppwriteVerifier
	throttle           *auth.Throttle
	trustedProxies     []netip.Prefix
	// db, when set, is used instead of a fresh SQLite database: a second
	// server over it stands for a second node.
	db *persistence.DB
	// redis, when set, is the revocations' shared cache, under redisPrefix.
	redis       *redis.Client
	redisPrefix string
	// sessionMaxAge and clock, when set, configure the auth service.
	sessionMaxAge time.Duration
	clock         func() time.Time
	conversations ConversationBackend
	// workflows, when set, is API.Workflows.
	workflows *Workflows
	// models and budgets, when set, are API.Models and API.Budgets.
	models  ModelCatalog
	budgets *budgets.Enforcer
}

// restEnv is a gateway with the whole REST API over a real auth.Service and
// a fresh SQLite database.
type restEnv struct {
	url    string
	logs   *testenv.LogBuffer
	server *Server
	db     *persistence.DB
	svc    *auth.Service
	stores Stores

	mu      sync.Mutex
	changed []string
}

// generous limits keep tests that are not about rate limiting clear of them.
var generous = ratelimit.Limit{Rate: 100_000, Period: time.Minute}

// restAPI builds the API and its auth service over db.
func restAPI(tb testing.TB, db *persistence.DB, cfg restConfig, onChanged func(context.Context, string)) (API, *auth.Service) {
	tb.Helper()
	toks, err := auth.NewTokens(auth.TokenConfig{Secret: testJWTSecret, Issuer: "kowai", Audience: "kowai"})
	if err != nil {
		tb.Fatal(err)
	}
	hasher, err := auth.NewHasher(auth.TestArgon2Params(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	sessions := NewAuthSessions(db)
	revOpts := auth.RevocationsOptions{RedisPrefix: cfg.redisPrefix}
	if cfg.redis != nil {
		revOpts.Redis = cfg.redis
	}
	revocations, err := auth.NewRevocations(sessions, revOpts)
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := auth.NewService(auth.Config{Users: NewAuthUsers(db), Sessions: sessions, Tokens: toks, Hasher: hasher,
		Revocations: revocations, Throttle: cfg.throttle, Appwrite: cfg.appwrite,
		SessionMaxAge: cfg.sessionMaxAge, Clock: cfg.clock, Audit: NewAuthAudit(persistence.NewAuditStore(db))})
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.rateLimit == (ratelimit.Limit{}) {
		cfg.rateLimit = generous
	}
	if cfg.authRateLimit == (ratelimit.Limit{}) {
		cfg.authRateLimit = generous
	}
	return API{
		Authenticator: svc, Chat: &fakeChat{}, Conversations: cfg.conversations, Auth: svc, Accounts: svc, OpenRegistration: !cfg.closedRegistration, Stores: NewStores(db),
		AgentTypes: func() []agents.Info {
			return []agents.Info{{Name: "chat", Description: "talks", Signature: "message, history -> response", ConfigSchema: json.RawMessage(`{"type":"object"}`)}}
		},
		ValidateSignature: func(_, sig string) error {
			if !strings.Contains(sig, "->") {
				return errors.New(`must look like "inputs -> outputs"`)
			}
			return nil
		},
		AgentWriter: changeRecorder{Agents: NewStores(db).Agents, changed: onChanged},
		ClusterInfo: func() any { return map[string]any{"node": "n1", "members": []string{"n1"}} },
		Limiter:     cfg.limiter, RateLimit: cfg.rateLimit, AuthRateLimit: cfg.authRateLimit,
		Workflows: cfg.workflows, Models: cfg.models, Budgets: cfg.budgets,
	}, svc
}

func startREST(t *testing.T, cfg restConfig) *restEnv {
	t.Helper()
	env := &restEnv{db: cfg.db}
	if env.db == nil {
		env.db = persisttest.SQLite(t)
	}
	env.stores = NewStores(env.db)
	api, svc := restAPI(t, env.db, cfg, func(_ context.Context, id string) {
		env.mu.Lock()
		defer env.mu.Unlock()
		env.changed = append(env.changed, id)
	})
	env.svc = svc
	ts := startWith(t, Options{TrustedProxies: cfg.trustedProxies}, func(s *Server) {
		env.server = s
		if err := s.Mount(api); err != nil {
			t.Fatal(err)
		}
	})
	env.url, env.logs = ts.url, ts.logs
	return env
}

// changeRecorder is an AgentWriter on the store that reports the agents it
// updates or deletes.
type changeRecorder struct {
	persistence.Agents
	changed func(context.Context, string)
}

func (r changeRecorder) Update(ctx context.Context, a persistence.Agent) (persistence.Agent, error) {
	out, err := r.Agents.Update(ctx, a)
	if err == nil {
		r.changed(ctx, a.ID)
	}
	return out, err
}

func (r changeRecorder) Delete(ctx context.Context, id string) error {
	err := r.Agents.Delete(ctx, id)
	if err == nil {
		r.changed(ctx, id)
	}
	return err
}

func (e *restEnv) agentsChanged() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.changed...)
}

// reply is a response read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v, failing the test on malformed JSON.
func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// problem checks that r is a problem+json with status and returns it.
func (r reply) problem(t testing.TB, status int) problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("content type %q, want problem+json; body %s", ct, r.body)
	}
	var p problem
	r.json(t, &p)
	if p.Status != status || p.CorrelationID == "" || p.Title == "" {
		t.Fatalf("problem %+v", p)
	}
	return p
}

// call sends one request; body, when not empty, is sent as JSON.
func call(t testing.TB, method, url, token, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) reply {
	t.Helper()
	if req.ContentLength > 1<<20 {
		return doOversized(t, req)
	}
	res, err := http.DefaultClient.Do(req)
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

// doOversized sends req's headers and only the start of its body, then reads
// the answer. The server refuses an oversized body on its Content-Length
// alone and closes the connection; a client still writing megabytes would
// then race the close and may see a broken pipe instead of the 413.
func doOversized(t testing.TB, req *http.Request) reply {
	t.Helper()
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var head strings.Builder
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", req.Method, req.URL.RequestURI(), req.URL.Host, req.ContentLength)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	head.WriteString("\r\n")
	start := make([]byte, 1024)
	n, _ := io.ReadFull(req.Body, start)
	if _, err := conn.Write(append([]byte(head.String()), start[:n]...)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
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

// user is a registered, logged-in test user.
type user struct {
	id, email, password string
	pair                auth.TokenPair
}

// newUser creates a user with roles through the service and logs in over
// HTTP.
func (e *restEnv) newUser(t *testing.T, email string, roles ...auth.Role) user {
	t.Helper()
	u, err := e.svc.CreateUser(t.Context(), auth.NewUser{Email: email, Password: "correct horse battery", Name: "T", Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return user{id: u.ID, email: email, password: "correct horse battery", pair: e.login(t, email, "correct horse battery")}
}

func (e *restEnv) login(t *testing.T, email, password string) auth.TokenPair {
	t.Helper()
	r := call(t, http.MethodPost, e.url+"/api/v1/auth/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
	var pair auth.TokenPair
	r.json(t, &pair)
	return pair
}

func TestRegister(t *testing.T) {
	env := startREST(t, restConfig{})
	url := env.url + "/api/v1/auth/register"
	r := call(t, http.MethodPost, url, "", `{"email":" Ada@Example.com ","password":"long enough pw","name":"Ada"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	var u auth.PublicUser
	r.json(t, &u)
	if !isUUID(u.ID) || u.Email != "ada@example.com" || u.Name != "Ada" || len(u.Roles) != 1 || u.Roles[0] != auth.RoleUser {
		t.Fatalf("registered %+v", u)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		fields     []string
	}{
		{"taken email", `{"email":"ADA@example.com","password":"long enough pw"}`, http.StatusConflict, nil},
		{"every bad field at once", `{"email":"nope","password":"short","name":"a\u0007b"}`, http.StatusBadRequest, []string{"email", "password", "name"}},
		{"missing password", `{"email":"b@example.com"}`, http.StatusBadRequest, []string{"password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := call(t, http.MethodPost, url, "", tc.body).problem(t, tc.status)
			var got []string
			for _, f := range p.Errors {
				got = append(got, f.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("field errors %v, want %v", p.Errors, tc.fields)
			}
		})
	}

	closed := startREST(t, restConfig{closedRegistration: true})
	call(t, http.MethodPost, closed.url+"/api/v1/auth/register", "", `{"email":"c@example.com","password":"long enough pw"}`).problem(t, http.StatusForbidden)
}

// TestRegisterRefusesWeakPasswords replays the audit's finding over HTTP:
// 12345678, password, eight spaces and the email itself were accepted. Each
// is now a 400 with a field error on password, and no account is made.
func TestRegisterRefusesWeakPasswords(t *testing.T) {
	env := startREST(t, restConfig{})
	url := env.url + "/api/v1/auth/register"
	const email = "weak.password.user@example.com"
	for _, tc := range []struct{ pw, says string }{
		{"12345678", "at least 12 characters"},
		{"password", "at least 12 characters"},
		{"        ", "at least 12 characters"},
		{"            ", "only spaces"},
		{"qwerty123456", "most common"},
		{"1q2w3e4r5t6y", "most common"},
		{email, "email"},
		{"Weak.Password.User", "email"},
	} {
		body, _ := json.Marshal(map[string]string{"email": email, "password": tc.pw})
		p := call(t, http.MethodPost, url, "", string(body)).problem(t, http.StatusBadRequest)
		if len(p.Errors) != 1 || p.Errors[0].Field != "password" || !strings.Contains(p.Errors[0].Message, tc.says) {
			t.Errorf("register with %q: field errors %+v, want one on password saying %q", tc.pw, p.Errors, tc.says)
		}
	}
	if _, err := env.stores.Users.GetByEmail(t.Context(), email); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("a refused registration made an account: %v", err)
	}
	body, _ := json.Marshal(map[string]string{"email": email, "password": "weak.password.user is me"})
	if r := call(t, http.MethodPost, url, "", string(body)); r.status != http.StatusCreated {
		t.Fatalf("a sound password: %d %s", r.status, r.body)
	}
}

func TestLoginThrottle(t *testing.T) {
	throttle, err := auth.NewThrottle(auth.ThrottleConfig{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		PerAccount: ratelimit.Limit{Rate: 2, Period: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	env := startREST(t, restConfig{throttle: throttle})
	body := `{"email":"who@example.com","password":"wrong password"}`
	for range 2 {
		p := call(t, http.MethodPost, env.url+"/api/v1/auth/login", "", body).problem(t, http.StatusUnauthorized)
		if p.Detail != "invalid email or password" {
			t.Fatalf("detail %q", p.Detail)
		}
	}
	r := call(t, http.MethodPost, env.url+"/api/v1/auth/login", "", body)
	r.problem(t, http.StatusTooManyRequests)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("throttled login without Retry-After")
	}
}

func TestAppwriteSignIn(t *testing.T) {
	env := startREST(t, restConfig{})
	call(t, http.MethodPost, env.url+"/api/v1/auth/appwrite", "", `{"jwt":"x"}`).problem(t, http.StatusNotFound)

	appwrite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Appwrite-JWT") != "good" || r.Header.Get("X-Appwrite-Project") != "p1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"$id":"aw-1","email":"aw@example.com","name":"Aw","labels":[],"status":true,"emailVerification":true}`)
	}))
	t.Cleanup(appwrite.Close)
	verifier, err := auth.NewAppwriteVerifier(auth.AppwriteConfig{Endpoint: appwrite.URL + "/v1", ProjectID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	env = startREST(t, restConfig{appwrite: verifier})
	call(t, http.MethodPost, env.url+"/api/v1/auth/appwrite", "", `{"jwt":"bad"}`).problem(t, http.StatusUnauthorized)
	r := call(t, http.MethodPost, env.url+"/api/v1/auth/appwrite", "", `{"jwt":"good"}`)
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("appwrite sign-in: %d %v %s", r.status, r.header, r.body)
	}
	var pair auth.TokenPair
	r.json(t, &pair)
	var me auth.PublicUser
	call(t, http.MethodGet, env.url+"/api/v1/auth/me", pair.AccessToken, "").json(t, &me)
	if me.Email != "aw@example.com" {
		t.Fatalf("me after appwrite sign-in: %+v", me)
	}
	// The second sign-in finds the linked user instead of creating one.
	call(t, http.MethodPost, env.url+"/api/v1/auth/appwrite", "", `{"jwt":"good"}`).json(t, &pair)
	linked, err := NewAuthUsers(env.db).UserByAppwriteID(t.Context(), "aw-1")
	if err != nil || linked.ID != me.ID {
		t.Fatalf("linked user %+v, %v; want %s", linked, err, me.ID)
	}
}

func TestRESTOpenAPICoversEveryRoute(t *testing.T) {
	env := startREST(t, restConfig{})
	undocumented, phantom := routeDocDiff(t, env.server)
	if len(undocumented) > 0 || len(phantom) > 0 {
		t.Fatalf("routes without docs: %v; docs without routes: %v", undocumented, phantom)
	}
	paths := env.server.OpenAPI()["paths"].(map[string]map[string]any)
	for _, p := range []string{"/api/v1/auth/register", "/api/v1/agents/{id}", "/api/v1/admin/users/{id}/roles", "/api/v1/workflows/{run_id}/cancel"} {
		if paths[p] == nil {
			t.Errorf("%s is not documented", p)
		}
	}
	if _, ok := paths["/api/v1/workflows/trigger"]["post"].(map[string]any)["responses"].(map[string]any)["202"]; !ok {
		t.Error("the workflow trigger does not document its 202")
	}
}

func TestMountNeedsEveryRESTDependency(t *testing.T) {
	db := persisttest.SQLite(t)
	api, _ := restAPI(t, db, restConfig{}, nil)
	for name, breakIt := range map[string]func(*API){
		"stores":      func(a *API) { a.Stores.Audit = nil },
		"accounts":    func(a *API) { a.Accounts = nil },
		"agent types": func(a *API) { a.AgentTypes = nil },
		"cluster":     func(a *API) { a.ClusterInfo = nil },
		"rate limit":  func(a *API) { a.RateLimit = ratelimit.Limit{Rate: -1, Period: time.Second} },
	} {
		broken := api
		breakIt(&broken)
		if err := newTestServer(t).Mount(broken); err == nil {
			t.Errorf("Mount without %s succeeded", name)
		}
	}
}
