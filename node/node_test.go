package node_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/node"
)

// Settings New must refuse match ErrConfig, which the command reports as bad
// input; other failures do not.
func TestNewRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		config  bool
		mention string
	}{
		{"unknown role in budgets", map[string]string{"KOWAI_BUDGETS": `{"guest":{"day_tokens":10}}`}, true, `unknown role "guest"`},
		{"rate limit per day", map[string]string{"KOWAI_RATE_LIMIT": "120/d"}, true, "KOWAI_RATE_LIMIT"},
		{"rate limit of zero", map[string]string{"KOWAI_RATE_LIMIT": "0/m"}, true, "KOWAI_RATE_LIMIT"},
		{"auth rate limit in words", map[string]string{"KOWAI_AUTH_RATE_LIMIT": "ten"}, true, "KOWAI_AUTH_RATE_LIMIT"},
		{"fallback without a model", map[string]string{"KOWAI_LLM_FALLBACK": "openai"}, true, "KOWAI_LLM_FALLBACK"},
		{"model without a provider", map[string]string{"KOWAI_LLM_MODELS": `[{"name":"gpt-4"}]`}, true, "provider:model"},
		{"models not a list", map[string]string{"KOWAI_LLM_MODELS": `{"name":"openai:x"}`}, true, "JSON list"},
		{"a price that is no number", map[string]string{"KOWAI_LLM_PRICES": "openai:x=a/b"}, true, "KOWAI_LLM_PRICES"},
		{"half the cluster TLS files", map[string]string{"KOWAI_CLUSTER_TLS_CA": "/nonexistent/ca.crt"}, true, "KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY not set"},
		{"unreadable cluster TLS files", map[string]string{"KOWAI_CLUSTER_TLS_CA": "/nonexistent/ca.crt", "KOWAI_CLUSTER_TLS_CERT": "/nonexistent/n.crt", "KOWAI_CLUSTER_TLS_KEY": "/nonexistent/n.key"}, true, "KOWAI_CLUSTER_TLS_CA"},
		{"no Redis behind the URL", map[string]string{"KOWAI_REDIS_URL": "redis://127.0.0.1:1/0"}, false, "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.NodeConfig(t, tc.env)
			n, err := node.New(t.Context(), cfg, node.Options{})
			if err == nil {
				t.Fatalf("New built a node: %v", n.Close())
			}
			if errors.Is(err, node.ErrConfig) != tc.config || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("New: %v (matches ErrConfig: %v); want it to mention %q and match ErrConfig: %v", err, errors.Is(err, node.ErrConfig), tc.mention, tc.config)
			}
			// A bad setting is refused before the database is opened (and created).
			if _, err := os.Stat(filepath.Join(cfg.DataDir, "kowai.db")); tc.config && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the database was opened before the setting was refused (stat: %v)", err)
			}
		})
	}
}

// Close releases a node that never ran, and may be called again.
func TestCloseWithoutRun(t *testing.T) {
	n, err := node.New(t.Context(), testenv.NodeConfig(t, nil), node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
