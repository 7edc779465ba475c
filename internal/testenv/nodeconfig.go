package testenv

import (
	"flag"
	"maps"
	"testing"

	"github.com/kowai/kowai/internal/config"
)

// NodeConfig loads the configuration kowai serve would read from env, added to
// an embedded database in a temporary directory, listeners on free ports,
// metrics off and no drain grace (env overrides any of them).
func NodeConfig(t testing.TB, env map[string]string) *config.Config {
	t.Helper()
	vars := map[string]string{
		"KOWAI_DATA_DIR":     t.TempDir(),
		"KOWAI_HTTP_ADDR":    "127.0.0.1:0",
		"KOWAI_METRICS_ADDR": "off",
		"KOWAI_DRAIN_GRACE":  "0s",
	}
	maps.Copy(vars, env)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	load := config.Flags(fs, func(k string) string { return vars[k] })
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
