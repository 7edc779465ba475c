package clustertest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/internal/certgen"
)

// Certs is a cluster CA and one node certificate for 127.0.0.1, ::1 and localhost, as
// `kowai cert` writes them, in a temporary directory. Nodes of one test share the node
// certificate, as an operator may.
type Certs struct {
	Dir      string
	CAFile   string
	CertFile string
	KeyFile  string
}

// NewCerts creates a CA and a node certificate in t.TempDir().
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	ca, err := certgen.NewCA("kowai test CA", time.Now())
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	if _, _, err := ca.Write(dir, "ca"); err != nil {
		t.Fatalf("write CA: %v", err)
	}
	node, err := certgen.NewNode(ca, "node", []string{"127.0.0.1", "::1", "localhost"}, time.Now())
	if err != nil {
		t.Fatalf("create node certificate: %v", err)
	}
	certFile, keyFile, err := node.Write(dir, "node")
	if err != nil {
		t.Fatalf("write node certificate: %v", err)
	}
	return &Certs{Dir: dir, CAFile: filepath.Join(dir, "ca.crt"), CertFile: certFile, KeyFile: keyFile}
}

// TLS loads the certificates as a node's cluster.TLS.
func (c *Certs) TLS(t testing.TB) *cluster.TLS {
	t.Helper()
	tl, err := cluster.LoadTLS(c.CAFile, c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatalf("load cluster TLS: %v", err)
	}
	return tl
}

// Env returns the KOWAI_CLUSTER_TLS_* variables that point a node process at the
// certificates.
func (c *Certs) Env() []string {
	return []string{
		"KOWAI_CLUSTER_TLS_CA=" + c.CAFile,
		"KOWAI_CLUSTER_TLS_CERT=" + c.CertFile,
		"KOWAI_CLUSTER_TLS_KEY=" + c.KeyFile,
	}
}
