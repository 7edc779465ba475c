package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	return loadOnly(t, nil, env, args...)
}

// loadOnly loads the configuration as a command that reads only the named
// settings (every setting when only is nil).
func loadOnly(t *testing.T, only []string, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := Flags(fs, func(k string) string { return env[k] }, only...)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags: %v", err)
	}
	return l()
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.DatabaseURL != "sqlite://data/kowai.db" || !c.AutoMigrate ||
		c.AccessTokenTTL != 15*time.Minute || c.RefreshTokenTTL != 720*time.Hour || !c.OpenRegistration ||
		c.LLMProvider != "offline" || c.ClusterProvider != "local" || c.ClusterName != "kowai" ||
		c.ClusterAddr != "127.0.0.1:0" || c.ClusterMembershipAddr != "127.0.0.1:6330" ||
		c.RateLimit != "120/m" || c.LogLevel != "info" || c.LogFormat != "" || c.DataDir != "./data" ||
		c.JWTIssuer != "kowai" || c.JWTAudience != "kowai" || c.AuthRateLimit != "10/m" ||
		c.MetricsAddr != "127.0.0.1:9090" || c.SessionMaxAge != 720*time.Hour || c.TrustedProxies != nil ||
		c.ClusterInsecure || c.Pprof {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

// The default database follows KOWAI_DATA_DIR, so moving the data directory
// moves everything the embedded node keeps.
func TestDefaultDatabaseLivesInDataDir(t *testing.T) {
	c, err := load(t, map[string]string{"KOWAI_DATA_DIR": "/srv/kowai"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "sqlite:///srv/kowai/kowai.db" || !c.Embedded() || !c.AutoMigrate {
		t.Fatalf("database %q embedded=%v auto-migrate=%v", c.DatabaseURL, c.Embedded(), c.AutoMigrate)
	}
	c, err = load(t, map[string]string{"KOWAI_DATA_DIR": "/srv/kowai", "KOWAI_DATABASE_URL": "sqlite:///tmp/x.db"})
	if err != nil || c.DatabaseURL != "sqlite:///tmp/x.db" {
		t.Fatalf("explicit database: %v %+v", err, c)
	}
}

func TestNetworkSettings(t *testing.T) {
	c, err := load(t, map[string]string{"KOWAI_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1,::1", "KOWAI_METRICS_ADDR": "off"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TrustedProxies) != 3 || c.TrustedProxies[1].String() != "127.0.0.1/32" || c.TrustedProxies[2].String() != "::1/128" || c.MetricsAddr != "" {
		t.Fatalf("proxies %v metrics %q", c.TrustedProxies, c.MetricsAddr)
	}
	for env, val := range map[string]string{
		"KOWAI_TRUSTED_PROXIES": "10.0.0.0/33", "KOWAI_METRICS_ADDR": "9090",
		"KOWAI_SESSION_MAX_AGE": "-1h", "KOWAI_CLUSTER_INSECURE": "maybe", "KOWAI_PPROF": "on",
	} {
		if _, err := load(t, map[string]string{env: val}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%s: %v", env, val, err)
		}
	}
}

func TestPrecedenceFlagOverEnv(t *testing.T) {
	c, err := load(t, map[string]string{"KOWAI_HTTP_ADDR": "127.0.0.1:9000", "KOWAI_LOG_LEVEL": "debug"}, "--http-addr", "127.0.0.1:9001")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9001" || c.LogLevel != "debug" {
		t.Fatalf("got addr %q level %q", c.HTTPAddr, c.LogLevel)
	}
}

func TestMySQLDefaultsAndRequirements(t *testing.T) {
	secret := strings.Repeat("s", 32)
	c, err := load(t, map[string]string{"KOWAI_DATABASE_URL": "mysql://root@127.0.0.1:3306/kowai", "KOWAI_JWT_SECRET": secret})
	if err != nil {
		t.Fatal(err)
	}
	if c.AutoMigrate || c.Embedded() {
		t.Fatalf("mysql must not auto-migrate by default: %+v", c)
	}
	c, err = load(t, map[string]string{"KOWAI_DATABASE_URL": "mysql://root@127.0.0.1:3306/kowai", "KOWAI_JWT_SECRET": secret, "KOWAI_AUTO_MIGRATE": "true"})
	if err != nil || !c.AutoMigrate {
		t.Fatalf("explicit auto-migrate: %v %+v", err, c)
	}
}

// A command validates only the settings it reads: migrate runs on MariaDB
// without KOWAI_JWT_SECRET, and a setting it does not read can be anything.
func TestCommandReadsOnlyItsSettings(t *testing.T) {
	migrate := []string{"KOWAI_DATABASE_URL", "KOWAI_DATA_DIR"}
	mysql := "mysql://root@127.0.0.1:3306/kowai"
	for _, tc := range []struct {
		name     string
		only     []string
		env      map[string]string
		mentions string // empty: loads
	}{
		{"migrate on mysql without a jwt secret", migrate, map[string]string{"KOWAI_DATABASE_URL": mysql}, ""},
		{"serve on mysql without a jwt secret", nil, map[string]string{"KOWAI_DATABASE_URL": mysql}, "KOWAI_JWT_SECRET is required"},
		{"migrate ignores a bad llm provider", migrate, map[string]string{"KOWAI_LLM_PROVIDER": "gpt", "KOWAI_JWT_SECRET": "short"}, ""},
		{"migrate ignores a half admin", migrate, map[string]string{"KOWAI_ADMIN_EMAIL": "a@b.c", "KOWAI_CLUSTER_PROVIDER": "etcd"}, ""},
		{"serve rejects a bad llm provider", nil, map[string]string{"KOWAI_LLM_PROVIDER": "gpt"}, "KOWAI_LLM_PROVIDER"},
		{"migrate rejects a bad database url", migrate, map[string]string{"KOWAI_DATABASE_URL": "postgres://x"}, "KOWAI_DATABASE_URL"},
		{"migrate rejects a bad log level", migrate, map[string]string{"KOWAI_LOG_LEVEL": "loud"}, "KOWAI_LOG_LEVEL"},
		{"a rule runs when the command reads its settings", []string{"KOWAI_DATABASE_URL", "KOWAI_JWT_SECRET"}, map[string]string{"KOWAI_DATABASE_URL": mysql}, "KOWAI_JWT_SECRET is required"},
	} {
		c, err := loadOnly(t, tc.only, tc.env)
		switch {
		case tc.mentions == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.mentions != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.mentions)):
			t.Errorf("%s: error %v; want ErrInvalid mentioning %q", tc.name, err, tc.mentions)
		case err == nil && c.LLMProvider != "offline":
			t.Errorf("%s: a setting not read keeps its default, got provider %q", tc.name, c.LLMProvider)
		}
	}
	// Only the settings read become flags.
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	Flags(fs, func(string) string { return "" }, migrate...)
	var flags []string
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	if strings.Join(flags, " ") != "data-dir database-url log-format log-level" {
		t.Errorf("migrate's flags: %v", flags)
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown setting name should panic")
		}
	}()
	Flags(flag.NewFlagSet("x", flag.ContinueOnError), func(string) string { return "" }, "KOWAI_NO_SUCH")
}

func TestOpenAIKeyFallback(t *testing.T) {
	c, err := load(t, map[string]string{"KOWAI_LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-x"})
	if err != nil || c.OpenAIAPIKey != "sk-x" || c.LLMAPIKey != "" {
		t.Fatalf("got %v %+v", err, c)
	}
}

func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		env      map[string]string
		args     []string
		mentions string
	}{
		{map[string]string{"KOWAI_HTTP_ADDR": "8080"}, nil, "KOWAI_HTTP_ADDR"},
		{nil, []string{"--http-addr", "nope"}, "--http-addr"},
		{map[string]string{"KOWAI_DATABASE_URL": "postgres://x"}, nil, "sqlite://PATH or mysql://"},
		{map[string]string{"KOWAI_DATABASE_URL": "mysql://u:topsecret@/"}, nil, "KOWAI_DATABASE_URL"},
		{map[string]string{"KOWAI_DATABASE_URL": "mysql://root@127.0.0.1/kowai"}, nil, "KOWAI_JWT_SECRET is required"},
		{map[string]string{"KOWAI_JWT_SECRET": "short"}, nil, "at least 32 bytes"},
		{map[string]string{"KOWAI_AUTO_MIGRATE": "maybe"}, nil, "true or false"},
		{map[string]string{"KOWAI_ACCESS_TOKEN_TTL": "15"}, nil, "KOWAI_ACCESS_TOKEN_TTL"},
		{map[string]string{"KOWAI_REFRESH_TOKEN_TTL": "-1h"}, nil, "positive"},
		{map[string]string{"KOWAI_LLM_PROVIDER": "gpt"}, nil, "offline, openai, anthropic, ollama"},
		{map[string]string{"KOWAI_CLUSTER_PROVIDER": "consul"}, nil, "KOWAI_CLUSTER_PROVIDER"},
		{map[string]string{"KOWAI_CLUSTER_PROVIDER": "automanaged"}, nil, "KOWAI_CLUSTER_PEERS is required"},
		{map[string]string{"KOWAI_CLUSTER_PROVIDER": "etcd"}, nil, "KOWAI_ETCD_ENDPOINTS is required"},
		{map[string]string{"KOWAI_CLUSTER_PEERS": "a,b"}, nil, "host:port"},
		{map[string]string{"KOWAI_CORS_ORIGINS": "example.com"}, nil, "scheme://host"},
		{map[string]string{"KOWAI_LOG_LEVEL": "trace"}, nil, "KOWAI_LOG_LEVEL"},
		{map[string]string{"KOWAI_LOG_FORMAT": "xml"}, nil, "json, text"},
		{map[string]string{"KOWAI_REDIS_URL": "localhost:6379"}, nil, "redis://"},
		{map[string]string{"KOWAI_ADMIN_EMAIL": "a@b.c"}, nil, "must be set together"},
		{map[string]string{"KOWAI_APPWRITE_ENDPOINT": "ftp://x"}, nil, "http(s) URL"},
		{map[string]string{"KOWAI_DATA_DIR": " "}, nil, "directory"},
	} {
		_, err := load(t, tc.env, tc.args...)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%v %v: want ErrInvalid, got %v", tc.env, tc.args, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.mentions) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v %v: error %q should mention %q on one line", tc.env, tc.args, err, tc.mentions)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error leaks a secret: %q", err)
		}
	}
}

func TestEnsureJWTSecretIsStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c := &Config{DatabaseURL: "sqlite://x.db", DataDir: dir}
	a, err := c.EnsureJWTSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.EnsureJWTSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(a) < 32 {
		t.Fatalf("secret not stable: %q %q", a, b)
	}
	st, err := os.Stat(filepath.Join(dir, "jwt-secret"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v %v", err, st)
	}
}

func TestEnsureJWTSecretUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere; point the data directory below a file instead.
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		c := &Config{DatabaseURL: "sqlite://x.db", DataDir: filepath.Join(f, "data")}
		if _, err := c.EnsureJWTSecret(); err == nil || !strings.Contains(err.Error(), "KOWAI_DATA_DIR") {
			t.Fatalf("want an error naming KOWAI_DATA_DIR, got %v", err)
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	c := &Config{DatabaseURL: "sqlite://x.db", DataDir: filepath.Join(dir, "data")}
	if _, err := c.EnsureJWTSecret(); err == nil || !strings.Contains(err.Error(), "KOWAI_DATA_DIR") {
		t.Fatalf("want an error naming KOWAI_DATA_DIR, got %v", err)
	}
}

// TestREADMETable keeps the README's configuration table in step with the
// settings table: every variable, its default and its meaning.
func TestREADMETable(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	for _, v := range Variables() {
		def := "(empty)"
		if v[1] != "" {
			def = "`" + v[1] + "`"
		}
		row := "| `" + v[0] + "` | " + def + " | " + v[2] + " |"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md lacks the row %s", row)
		}
	}
}

// pprof is served on the metrics address only: turning it on needs one.
func TestPprofNeedsTheMetricsAddress(t *testing.T) {
	c, err := load(t, map[string]string{"KOWAI_PPROF": "true"})
	if err != nil || !c.Pprof || c.MetricsAddr != "127.0.0.1:9090" {
		t.Fatalf("KOWAI_PPROF=true: %v %+v", err, c)
	}
	_, err = load(t, map[string]string{"KOWAI_PPROF": "true", "KOWAI_METRICS_ADDR": "off"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "KOWAI_PPROF") {
		t.Fatalf("KOWAI_PPROF=true with KOWAI_METRICS_ADDR=off: %v", err)
	}
	if c, err := load(t, map[string]string{"KOWAI_METRICS_ADDR": "off"}); err != nil || c.Pprof {
		t.Fatalf("metrics off, pprof by default: %v %+v", err, c)
	}
}
