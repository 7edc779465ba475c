package cluster

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/certgen"
)

// testTLS returns TLS material from a fresh CA, for configurations that need some.
func testTLS(t *testing.T) *TLS {
	t.Helper()
	ca, node := testPKI(t, time.Now())
	tl, err := NewTLS(ca.CertPEM, node.CertPEM, node.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func testPKI(t *testing.T, now time.Time) (ca, node *certgen.Pair) {
	t.Helper()
	ca, err := certgen.NewCA("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	node, err = certgen.NewNode(ca, "node", []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return ca, node
}

func TestNewTLS(t *testing.T) {
	ca, node := testPKI(t, time.Now())
	otherCA, otherNode := testPKI(t, time.Now())
	// A node certificate that expired a year ago, from a CA still valid.
	past := time.Now().Add(-2 * certgen.NodeValidity)
	oldCA, expired := testPKI(t, past)
	bundle := append(append([]byte{}, otherCA.CertPEM...), ca.CertPEM...)
	cases := []struct {
		name          string
		ca, cert, key []byte
		want          string // "" means valid
	}{
		{"node from the CA", ca.CertPEM, node.CertPEM, node.KeyPEM, ""},
		{"CA bundle holding the node's CA", bundle, node.CertPEM, node.KeyPEM, ""},
		{"node from another CA", ca.CertPEM, otherNode.CertPEM, otherNode.KeyPEM, "does not verify against the cluster CA"},
		{"expired node", oldCA.CertPEM, expired.CertPEM, expired.KeyPEM, "expired"},
		{"key of another node", ca.CertPEM, node.CertPEM, otherNode.KeyPEM, "key"},
		{"CA file without a certificate", []byte("not pem"), node.CertPEM, node.KeyPEM, "no PEM certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTLS(tc.ca, tc.cert, tc.key)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("NewTLS: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewTLS: err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestTLSConfigs(t *testing.T) {
	tl := testTLS(t)
	srv, cli := tl.ServerConfig(), tl.ClientConfig()
	if srv.MinVersion != tls.VersionTLS13 || cli.MinVersion != tls.VersionTLS13 {
		t.Errorf("min versions %x / %x, want TLS 1.3", srv.MinVersion, cli.MinVersion)
	}
	if srv.ClientAuth != tls.RequireAndVerifyClientCert || srv.ClientCAs == nil || len(srv.Certificates) != 1 {
		t.Errorf("server config %+v: want the node certificate and a client certificate required and verified", srv)
	}
	if cli.RootCAs == nil || cli.InsecureSkipVerify || len(cli.Certificates) != 1 {
		t.Errorf("client config %+v: want the node certificate and the server verified against the CA", cli)
	}
}

func TestLoadTLSNamesTheMissingFile(t *testing.T) {
	dir := t.TempDir()
	ca, node := testPKI(t, time.Now())
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n.crt"), filepath.Join(dir, "n.key")
	for f, data := range map[string][]byte{caFile: ca.CertPEM, certFile: node.CertPEM, keyFile: node.KeyPEM} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadTLS(caFile, certFile, keyFile); err != nil {
		t.Fatalf("LoadTLS: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct{ ca, cert, key, want string }{
		{missing, certFile, keyFile, "cluster CA"},
		{caFile, missing, keyFile, "node certificate"},
		{caFile, certFile, missing, "node key"},
	} {
		if _, err := LoadTLS(tc.ca, tc.cert, tc.key); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadTLS(%s, %s, %s): %v, want a missing %s", tc.ca, tc.cert, tc.key, err, tc.want)
		}
	}
}

// An insecure multi-node cluster is allowed only with a warning an operator cannot miss.
func TestInsecureClusterWarns(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		warn bool
	}{
		{"automanaged insecure", Config{Provider: ProviderAutomanaged, Peers: []string{"127.0.0.1:6330"}, Insecure: true}, true},
		{"automanaged with TLS", Config{Provider: ProviderAutomanaged, Peers: []string{"127.0.0.1:6330"}, TLS: testTLS(t)}, false},
		{"local", Config{Insecure: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
			if _, err := New(tc.cfg); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "INSECURE"); got != tc.warn {
				t.Fatalf("warned %v, want %v; log %q", got, tc.warn, buf.String())
			}
		})
	}
}
