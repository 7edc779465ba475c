package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid marks a configuration error: the caller prints it on one line
// and exits with status 2.
var ErrInvalid = errors.New("invalid configuration")

// Config is the resolved configuration of a kowai node. Every field comes
// from a KOWAI_* environment variable or its matching flag (the flag wins),
// falling back to the defaults of API.md.
type Config struct {
	HTTPAddr         string
	DatabaseURL      string
	AutoMigrate      bool
	RedisURL         string
	JWTSecret        string
	JWTIssuer        string
	JWTAudience      string
	AccessTokenTTL   time.Duration
	RefreshTokenTTL  time.Duration
	OpenRegistration bool
	AdminEmail       string
	AdminPassword    string

	AppwriteEndpoint  string
	AppwriteProjectID string

	LLMProvider string
	LLMModel    string
	LLMBaseURL  string
	LLMAPIKey   string
	LLMFallback string
	LLMPrices   string
	LLMCache    bool
	// LLMModels is KOWAI_LLM_MODELS, a JSON list of named model endpoints;
	// the node parses it and reads each endpoint's api_key_env variable.
	LLMModels string
	// Budgets is KOWAI_BUDGETS: per-role daily and monthly token and dollar
	// limits, as a JSON object (see the budgets package).
	Budgets string
	// OpenAIAPIKey and AnthropicAPIKey come from OPENAI_API_KEY and
	// ANTHROPIC_API_KEY: keys for the primary model when KOWAI_LLM_API_KEY
	// is empty, and for fallback models of those providers.
	OpenAIAPIKey    string
	AnthropicAPIKey string

	ClusterProvider       string
	ClusterName           string
	ClusterAddr           string
	ClusterPeers          []string
	ClusterMembershipAddr string
	EtcdEndpoints         []string

	// ClusterTLSCA, ClusterTLSCert and ClusterTLSKey are PEM files for
	// mutual TLS between nodes' remoting; ClusterInsecure allows a
	// multi-node cluster without them (development only).
	ClusterTLSCA    string
	ClusterTLSCert  string
	ClusterTLSKey   string
	ClusterInsecure bool

	RateLimit     string
	AuthRateLimit string
	// TrustedProxies are the networks whose X-Forwarded-For and Forwarded
	// headers name the client; nobody's by default.
	TrustedProxies []*net.IPNet
	// MetricsAddr is where /metrics is served; empty when "off".
	MetricsAddr string
	// Pprof serves net/http/pprof under /debug/pprof/ on MetricsAddr too.
	Pprof bool
	// WebhookSecret signs workflow webhook notifications; empty: derived from the
	// JWT secret (HKDF-SHA256, label "kowai webhook signing v1").
	WebhookSecret string
	// WebhookAllow are the networks webhooks may reach although they are loopback,
	// private, link-local or otherwise not public (SSRF guard); none by default.
	WebhookAllow  []*net.IPNet
	SessionMaxAge time.Duration
	CORSOrigins   []string
	DrainGrace    time.Duration
	LogLevel      string
	LogFormat     string
	DataDir       string
}

// Embedded reports whether the node runs on the embedded SQLite database.
func (c *Config) Embedded() bool { return strings.HasPrefix(c.DatabaseURL, "sqlite://") }

// setting describes one variable: its environment name, flag name, default,
// help text and how to store a validated value into a Config.
type setting struct {
	env, flag, def, usage string
	// apply validates raw and stores it; its error text is the accepted form.
	apply func(c *Config, raw string) error
}

// settings is the one table of every variable of API.md, so help text,
// parsing and the README cannot drift apart.
func settings() []setting {
	str := func(dst func(*Config) *string) func(*Config, string) error {
		return func(c *Config, raw string) error { *dst(c) = raw; return nil }
	}
	list := func(dst func(*Config) *[]string) func(*Config, string) error {
		return func(c *Config, raw string) error { *dst(c) = splitList(raw); return nil }
	}
	oneOf := func(dst func(*Config) *string, allowed ...string) func(*Config, string) error {
		return func(c *Config, raw string) error {
			for _, a := range allowed {
				if raw == a {
					*dst(c) = raw
					return nil
				}
			}
			return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
		}
	}
	dur := func(dst func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d <= 0 {
				return errors.New("want a positive Go duration such as 15m or 720h")
			}
			*dst(c) = d
			return nil
		}
	}
	boolean := func(dst func(*Config) *bool) func(*Config, string) error {
		return func(c *Config, raw string) error {
			b, err := strconv.ParseBool(raw)
			if err != nil {
				return errors.New("want true or false")
			}
			*dst(c) = b
			return nil
		}
	}
	return []setting{
		{"KOWAI_HTTP_ADDR", "http-addr", "127.0.0.1:8080", "gateway listen address (set 0.0.0.0:8080 or :8080 to accept other hosts)", func(c *Config, raw string) error {
			if err := checkHostPort(raw); err != nil {
				return err
			}
			c.HTTPAddr = raw
			return nil
		}},
		{"KOWAI_DATABASE_URL", "database-url", "", "sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB?PARAMS (empty: sqlite://DATA_DIR/kowai.db)", func(c *Config, raw string) error {
			if raw == "" {
				return nil // resolved against KOWAI_DATA_DIR once that is known
			}
			if err := checkDatabaseURL(raw); err != nil {
				return err
			}
			c.DatabaseURL = raw
			return nil
		}},
		{"KOWAI_AUTO_MIGRATE", "auto-migrate", "", "migrate on start (default true for sqlite, false for mysql)", func(c *Config, raw string) error {
			if raw == "" {
				c.AutoMigrate = c.DatabaseURL == "" || c.Embedded()
				return nil
			}
			return boolean(func(c *Config) *bool { return &c.AutoMigrate })(c, raw)
		}},
		{"KOWAI_REDIS_URL", "redis-url", "", "redis://[:PASS@]HOST:PORT/DB; empty keeps caches and limits in-process", func(c *Config, raw string) error {
			if raw != "" {
				u, err := url.Parse(raw)
				if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
					return errors.New("want redis://[:PASS@]HOST:PORT/DB")
				}
			}
			c.RedisURL = raw
			return nil
		}},
		{"KOWAI_JWT_SECRET", "jwt-secret", "", "HS256 key of at least 32 bytes; generated and kept in the data directory when embedded", func(c *Config, raw string) error {
			if raw != "" && len(raw) < 32 {
				return errors.New("want at least 32 bytes")
			}
			c.JWTSecret = raw
			return nil
		}},
		{"KOWAI_JWT_ISSUER", "jwt-issuer", "kowai", "iss claim", str(func(c *Config) *string { return &c.JWTIssuer })},
		{"KOWAI_JWT_AUDIENCE", "jwt-audience", "kowai", "aud claim", str(func(c *Config) *string { return &c.JWTAudience })},
		{"KOWAI_ACCESS_TOKEN_TTL", "access-token-ttl", "15m", "access token lifetime", dur(func(c *Config) *time.Duration { return &c.AccessTokenTTL })},
		{"KOWAI_REFRESH_TOKEN_TTL", "refresh-token-ttl", "720h", "refresh token lifetime", dur(func(c *Config) *time.Duration { return &c.RefreshTokenTTL })},
		{"KOWAI_OPEN_REGISTRATION", "open-registration", "true", "allow POST /api/v1/auth/register", boolean(func(c *Config) *bool { return &c.OpenRegistration })},
		{"KOWAI_ADMIN_EMAIL", "admin-email", "", "create this admin on first start if no admin exists", str(func(c *Config) *string { return &c.AdminEmail })},
		{"KOWAI_ADMIN_PASSWORD", "admin-password", "", "password of KOWAI_ADMIN_EMAIL", str(func(c *Config) *string { return &c.AdminPassword })},
		{"KOWAI_APPWRITE_ENDPOINT", "appwrite-endpoint", "", "Appwrite API endpoint, e.g. https://cloud.appwrite.io/v1", func(c *Config, raw string) error {
			if raw != "" {
				if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return errors.New("want an http(s) URL")
				}
			}
			c.AppwriteEndpoint = raw
			return nil
		}},
		{"KOWAI_APPWRITE_PROJECT_ID", "appwrite-project-id", "", "Appwrite project ID", str(func(c *Config) *string { return &c.AppwriteProjectID })},
		{"KOWAI_LLM_PROVIDER", "llm-provider", "offline", "offline, openai, anthropic or ollama", oneOf(func(c *Config) *string { return &c.LLMProvider }, "offline", "openai", "anthropic", "ollama")},
		{"KOWAI_LLM_MODEL", "llm-model", "", "model name (provider default when empty)", str(func(c *Config) *string { return &c.LLMModel })},
		{"KOWAI_LLM_BASE_URL", "llm-base-url", "", "provider base URL (any OpenAI-compatible server for openai)", str(func(c *Config) *string { return &c.LLMBaseURL })},
		{"KOWAI_LLM_API_KEY", "llm-api-key", "", "provider API key (OPENAI_API_KEY / ANTHROPIC_API_KEY are honoured too)", str(func(c *Config) *string { return &c.LLMAPIKey })},
		{"KOWAI_LLM_FALLBACK", "llm-fallback", "", "comma-separated provider:model list tried in order when the primary fails", str(func(c *Config) *string { return &c.LLMFallback })},
		{"KOWAI_LLM_PRICES", "llm-prices", "", "price overrides provider:model=IN/OUT[/CACHED] in USD per million tokens, comma-separated", str(func(c *Config) *string { return &c.LLMPrices })},
		{"KOWAI_LLM_MODELS", "llm-models", "", "JSON list of named model endpoints agents may select: [{name: provider:model, base_url, api_key_env, input_per_1k, output_per_1k, premium}]", str(func(c *Config) *string { return &c.LLMModels })},
		{"KOWAI_BUDGETS", "budgets", "", "JSON object of per-role spending limits: {role: {day_tokens, day_usd, month_tokens, month_usd}}; 0 or absent is no limit", str(func(c *Config) *string { return &c.Budgets })},
		{"KOWAI_LLM_CACHE", "llm-cache", "true", "cache model replies (in Redis when KOWAI_REDIS_URL is set, else in process)", boolean(func(c *Config) *bool { return &c.LLMCache })},
		{"KOWAI_CLUSTER_PROVIDER", "cluster-provider", "local", "local, automanaged, etcd or k8s", oneOf(func(c *Config) *string { return &c.ClusterProvider }, "local", "automanaged", "etcd", "k8s")},
		{"KOWAI_CLUSTER_NAME", "cluster-name", "kowai", "cluster name", str(func(c *Config) *string { return &c.ClusterName })},
		{"KOWAI_CLUSTER_ADDR", "cluster-addr", "127.0.0.1:0", "this node's actor-remoting address host:port", func(c *Config, raw string) error {
			if err := checkHostPort(raw); err != nil {
				return err
			}
			c.ClusterAddr = raw
			return nil
		}},
		{"KOWAI_CLUSTER_PEERS", "cluster-peers", "", "automanaged: host:port,... of every node's membership endpoint", func(c *Config, raw string) error {
			for _, p := range splitList(raw) {
				if err := checkHostPort(p); err != nil {
					return errors.New("want host:port,host:port")
				}
			}
			c.ClusterPeers = splitList(raw)
			return nil
		}},
		{"KOWAI_CLUSTER_MEMBERSHIP_ADDR", "cluster-membership-addr", "127.0.0.1:6330", "automanaged: this node's membership endpoint host:port", func(c *Config, raw string) error {
			if err := checkHostPort(raw); err != nil {
				return err
			}
			c.ClusterMembershipAddr = raw
			return nil
		}},
		{"KOWAI_ETCD_ENDPOINTS", "etcd-endpoints", "", "etcd: host:port,...", list(func(c *Config) *[]string { return &c.EtcdEndpoints })},
		{"KOWAI_CLUSTER_TLS_CA", "cluster-tls-ca", "", "PEM file of the cluster CA for mutual TLS between nodes (kowai cert ca)", str(func(c *Config) *string { return &c.ClusterTLSCA })},
		{"KOWAI_CLUSTER_TLS_CERT", "cluster-tls-cert", "", "PEM file of this node's certificate, signed by the cluster CA (kowai cert node)", str(func(c *Config) *string { return &c.ClusterTLSCert })},
		{"KOWAI_CLUSTER_TLS_KEY", "cluster-tls-key", "", "PEM file of this node's private key", str(func(c *Config) *string { return &c.ClusterTLSKey })},
		{"KOWAI_CLUSTER_INSECURE", "cluster-insecure", "false", "allow plaintext, unauthenticated remoting between nodes (development only)", boolean(func(c *Config) *bool { return &c.ClusterInsecure })},
		{"KOWAI_RATE_LIMIT", "rate-limit", "120/m", "default per-user limit N/s, N/m or N/h", str(func(c *Config) *string { return &c.RateLimit })},
		{"KOWAI_AUTH_RATE_LIMIT", "auth-rate-limit", "10/m", "per-address limit of register, login, refresh and Appwrite sign-in, N/s, N/m or N/h", str(func(c *Config) *string { return &c.AuthRateLimit })},
		{"KOWAI_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For/Forwarded headers give the client address (empty: nobody's)", func(c *Config, raw string) error {
			nets, err := parseCIDRs(raw)
			c.TrustedProxies = nets
			return err
		}},
		{"KOWAI_WEBHOOK_SECRET", "webhook-secret", "", "HMAC-SHA256 key of workflow webhook signatures, at least 32 bytes; the same on every node (empty: derived from the JWT secret)", func(c *Config, raw string) error {
			if raw != "" && len(raw) < 32 {
				return errors.New("want at least 32 bytes")
			}
			c.WebhookSecret = raw
			return nil
		}},
		{"KOWAI_WEBHOOK_ALLOW", "webhook-allow", "", "comma-separated CIDRs that workflow webhooks may reach although they are loopback, private or link-local (empty: public addresses only)", func(c *Config, raw string) error {
			nets, err := parseCIDRs(raw)
			c.WebhookAllow = nets
			return err
		}},
		{"KOWAI_METRICS_ADDR", "metrics-addr", "127.0.0.1:9090", "where /metrics is served, host:port, or off", func(c *Config, raw string) error {
			if raw == "off" {
				c.MetricsAddr = ""
				return nil
			}
			if err := checkHostPort(raw); err != nil {
				return errors.New("want host:port or off")
			}
			c.MetricsAddr = raw
			return nil
		}},
		{"KOWAI_PPROF", "pprof", "false", "also serve the runtime's profiles (net/http/pprof) at /debug/pprof/ on KOWAI_METRICS_ADDR, never on the API port", boolean(func(c *Config) *bool { return &c.Pprof })},
		{"KOWAI_SESSION_MAX_AGE", "session-max-age", "720h", "absolute lifetime of a sign-in session, refreshes included", dur(func(c *Config) *time.Duration { return &c.SessionMaxAge })},
		{"KOWAI_CORS_ORIGINS", "cors-origins", "", "comma-separated allowed origins (empty: same-origin only)", func(c *Config, raw string) error {
			for _, o := range splitList(raw) {
				if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
					return errors.New("want scheme://host[:port],...")
				}
			}
			c.CORSOrigins = splitList(raw)
			return nil
		}},
		{"KOWAI_DRAIN_GRACE", "drain-grace", "2s", "on SIGTERM, how long readiness reports draining before the gateway stops accepting", func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d < 0 {
				return errors.New("want a Go duration >= 0 such as 2s")
			}
			c.DrainGrace = d
			return nil
		}},
		{"KOWAI_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", oneOf(func(c *Config) *string { return &c.LogLevel }, "debug", "info", "warn", "error")},
		{"KOWAI_LOG_FORMAT", "log-format", "", "json or text (empty: json for serve, plain messages for the other commands)", func(c *Config, raw string) error {
			if raw == "" {
				return nil
			}
			return oneOf(func(c *Config) *string { return &c.LogFormat }, "json", "text")(c, raw)
		}},
		{"KOWAI_DATA_DIR", "data-dir", "./data", "directory of the embedded database and generated secrets", func(c *Config, raw string) error {
			if raw == "" {
				return errors.New("want a directory path")
			}
			c.DataDir = raw
			return nil
		}},
	}
}

// secret names the variables whose values never appear in error messages.
var secret = map[string]bool{
	"KOWAI_DATABASE_URL": true, "KOWAI_REDIS_URL": true, "KOWAI_JWT_SECRET": true,
	"KOWAI_ADMIN_PASSWORD": true, "KOWAI_LLM_API_KEY": true, "KOWAI_WEBHOOK_SECRET": true,
}

// parseCIDRs parses a comma-separated list of CIDRs; a bare address is its own /32
// or /128.
func parseCIDRs(raw string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, p := range splitList(raw) {
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else if ip != nil {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, errors.New("want CIDR,CIDR such as 10.0.0.0/8,127.0.0.1/32")
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// Flags registers a flag on fs for every setting a command reads and returns
// a loader that, after fs.Parse, resolves flag > environment > default for
// those settings, validates each value, and then runs the cross-setting
// checks (such as "KOWAI_JWT_SECRET is required with a mysql database") whose
// settings the command all reads.
//
// only names the settings the command reads by their environment variables;
// none means every setting (kowai serve). KOWAI_LOG_LEVEL and KOWAI_LOG_FORMAT
// are always read. A setting the command does not read is neither looked up
// nor validated and keeps its default, so `kowai migrate` does not fail on a
// KOWAI_JWT_SECRET or KOWAI_LLM_PROVIDER it has no use for. Naming a variable
// that does not exist panics: it is a programming error, caught by any test
// that runs the command.
//
// getenv is os.Getenv in production; tests pass a map lookup.
func Flags(fs *flag.FlagSet, getenv func(string) string, only ...string) func() (*Config, error) {
	all := settings()
	reads := map[string]bool{"KOWAI_LOG_LEVEL": true, "KOWAI_LOG_FORMAT": true}
	for _, name := range only {
		if !slices.ContainsFunc(all, func(s setting) bool { return s.env == name }) {
			panic("config: Flags: unknown setting " + name)
		}
		reads[name] = true
	}
	vals := make([]*string, len(all))
	for i, s := range all {
		if len(only) == 0 {
			reads[s.env] = true
		}
		if reads[s.env] {
			vals[i] = fs.String(s.flag, "", help(s))
		}
	}
	return func() (*Config, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		c := &Config{}
		// KOWAI_AUTO_MIGRATE's default depends on the database URL, which
		// comes earlier in the table, so one ordered pass suffices.
		for i, s := range all {
			raw, from := s.def, ""
			if reads[s.env] {
				if v := getenv(s.env); v != "" {
					raw, from = v, s.env
				}
				if set[s.flag] {
					raw, from = *vals[i], "--"+s.flag
				}
			}
			if err := s.apply(c, strings.TrimSpace(raw)); err != nil {
				if from == "" {
					from = s.env
				}
				shown := strconv.Quote(raw)
				if secret[s.env] {
					shown = "(hidden)"
				}
				return nil, fmt.Errorf("%w: %s=%s: %v", ErrInvalid, from, shown, err)
			}
		}
		if c.DatabaseURL == "" {
			c.DatabaseURL = "sqlite://" + filepath.Join(c.DataDir, "kowai.db")
		}
		c.OpenAIAPIKey, c.AnthropicAPIKey = getenv("OPENAI_API_KEY"), getenv("ANTHROPIC_API_KEY")
		for _, r := range rules() {
			applies := true
			for _, n := range r.reads {
				applies = applies && reads[n]
			}
			if !applies {
				continue
			}
			if err := r.check(c); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
		return c, nil
	}
}

// help is a flag's usage line: what the setting means, its variable and its
// default.
func help(s setting) string {
	if s.def == "" {
		return fmt.Sprintf("%s (env %s)", s.usage, s.env)
	}
	return fmt.Sprintf("%s (env %s, default %s)", s.usage, s.env, s.def)
}

// rule is a check across settings; it runs only for a command that reads
// every setting it names.
type rule struct {
	reads []string
	check func(c *Config) error
}

// rules are the cross-setting checks, each returning the accepted form.
func rules() []rule {
	together := func(a, b string, va, vb func(c *Config) string) rule {
		return rule{[]string{a, b}, func(c *Config) error {
			if (va(c) == "") != (vb(c) == "") {
				return fmt.Errorf("%s and %s must be set together", a, b)
			}
			return nil
		}}
	}
	return []rule{
		{[]string{"KOWAI_DATABASE_URL", "KOWAI_JWT_SECRET"}, func(c *Config) error {
			if !c.Embedded() && c.JWTSecret == "" {
				return errors.New("KOWAI_JWT_SECRET is required with a mysql database: want at least 32 bytes")
			}
			return nil
		}},
		{[]string{"KOWAI_CLUSTER_PROVIDER", "KOWAI_CLUSTER_PEERS"}, func(c *Config) error {
			if c.ClusterProvider == "automanaged" && len(c.ClusterPeers) == 0 {
				return errors.New("KOWAI_CLUSTER_PEERS is required with KOWAI_CLUSTER_PROVIDER=automanaged: want host:port,host:port")
			}
			return nil
		}},
		{[]string{"KOWAI_CLUSTER_PROVIDER", "KOWAI_ETCD_ENDPOINTS"}, func(c *Config) error {
			if c.ClusterProvider == "etcd" && len(c.EtcdEndpoints) == 0 {
				return errors.New("KOWAI_ETCD_ENDPOINTS is required with KOWAI_CLUSTER_PROVIDER=etcd: want host:port,host:port")
			}
			return nil
		}},
		{[]string{"KOWAI_METRICS_ADDR", "KOWAI_PPROF"}, func(c *Config) error {
			if c.Pprof && c.MetricsAddr == "" {
				return errors.New("KOWAI_PPROF=true needs KOWAI_METRICS_ADDR, where it is served: want host:port")
			}
			return nil
		}},
		together("KOWAI_ADMIN_EMAIL", "KOWAI_ADMIN_PASSWORD",
			func(c *Config) string { return c.AdminEmail }, func(c *Config) string { return c.AdminPassword }),
		together("KOWAI_APPWRITE_ENDPOINT", "KOWAI_APPWRITE_PROJECT_ID",
			func(c *Config) string { return c.AppwriteEndpoint }, func(c *Config) string { return c.AppwriteProjectID }),
	}
}

// Variables lists every environment variable with its default and meaning,
// in the order of API.md; the README's table is generated from the same list.
func Variables() [][3]string {
	var out [][3]string
	for _, s := range settings() {
		out = append(out, [3]string{s.env, s.def, s.usage})
	}
	return out
}

// EnsureJWTSecret returns c.JWTSecret, or for an embedded node without one,
// the secret kept in DataDir/jwt-secret, generating it on first start. The
// file is created with mode 0600 and never rewritten, so tokens survive
// restarts.
func (c *Config) EnsureJWTSecret() (string, error) {
	if c.JWTSecret != "" {
		return c.JWTSecret, nil
	}
	if !c.Embedded() {
		return "", fmt.Errorf("%w: KOWAI_JWT_SECRET is required with a mysql database", ErrInvalid)
	}
	path := filepath.Join(c.DataDir, "jwt-secret")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return "", fmt.Errorf("jwt secret file %s is shorter than 32 bytes: delete it to generate a new one", path)
		}
		return s, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read jwt secret (check KOWAI_DATA_DIR points to a usable directory): %w", err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory %s (set KOWAI_DATA_DIR to a writable directory): %w", c.DataDir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate jwt secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process won the race; use its secret.
			return c.EnsureJWTSecret()
		}
		return "", fmt.Errorf("write jwt secret (set KOWAI_DATA_DIR to a writable directory): %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("write jwt secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write jwt secret: %w", err)
	}
	return s, nil
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return errors.New("want host:port with a port in 0-65535")
	}
	return nil
}

func checkDatabaseURL(s string) error {
	switch {
	case strings.HasPrefix(s, "sqlite://"):
		if strings.TrimPrefix(s, "sqlite://") == "" {
			return errors.New("want sqlite://PATH")
		}
		return nil
	case strings.HasPrefix(s, "mysql://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return errors.New("want mysql://USER:PASS@HOST:PORT/DB?PARAMS")
		}
		return nil
	}
	return errors.New("want sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB?PARAMS")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
