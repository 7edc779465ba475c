package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kowai/kowai/cluster"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kowai cert ca, then kowai cert node: the node certificate verifies against the CA for
// its hosts, serving and dialing; every file is 0600; nothing is overwritten.
func TestCertRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if code, out, stderr := kowai(t, dir, nil, "", "cert", "ca", "--out", pki); code != 0 || !strings.Contains(out, "ca.key") {
		t.Fatalf("cert ca: exit %d, out %q, stderr %q", code, out, stderr)
	}
	// NAME after the flags works as well as before them.
	code, out, stderr := kowai(t, dir, nil, "", "cert", "node", "--ca", pki, "--host", "10.0.0.5,node-1.internal", "--out", pki, "node-1")
	if code != 0 {
		t.Fatalf("cert node: exit %d, out %q, stderr %q", code, out, stderr)
	}
	for _, v := range []string{"KOWAI_CLUSTER_TLS_CA=" + filepath.Join(pki, "ca.crt"), "KOWAI_CLUSTER_TLS_CERT=" + filepath.Join(pki, "node-1.crt"), "KOWAI_CLUSTER_TLS_KEY=" + filepath.Join(pki, "node-1.key")} {
		if !strings.Contains(out, v) {
			t.Errorf("cert node output lacks %s:\n%s", v, out)
		}
	}
	if code, _, stderr := kowai(t, dir, nil, "", "cert", "node", "node-2", "--ca", pki, "--out", pki); code != 0 {
		t.Fatalf("cert node with default hosts: exit %d, %s", code, stderr)
	}

	info, err := os.Stat(pki)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("out directory: %v %v, want mode 0700", info.Mode(), err)
	}
	for _, f := range []string{"ca.crt", "ca.key", "node-1.crt", "node-1.key", "node-2.crt", "node-2.key"} {
		info, err := os.Stat(filepath.Join(pki, f))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, info.Mode(), err)
		}
	}

	ca := readCert(t, filepath.Join(pki, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, tc := range []struct {
		file  string
		hosts []string
	}{
		{"node-1.crt", []string{"node-1", "node-1.internal", "10.0.0.5"}},
		{"node-2.crt", []string{"node-2", "localhost", "127.0.0.1", "::1"}},
	} {
		c := readCert(t, filepath.Join(pki, tc.file))
		if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", tc.file, c.PublicKey)
		}
		if validity := c.NotAfter.Sub(c.NotBefore); validity < 300*24*time.Hour || validity > 400*24*time.Hour {
			t.Errorf("%s: valid for %s, want about a year", tc.file, validity)
		}
		for _, host := range tc.hosts {
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("%s for %s, usage %v: %v", tc.file, host, usage, err)
				}
			}
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "elsewhere.example"}); err == nil {
			t.Errorf("%s verifies for a host it was not made for", tc.file)
		}
	}
	if _, err := cluster.LoadTLS(filepath.Join(pki, "ca.crt"), filepath.Join(pki, "node-1.crt"), filepath.Join(pki, "node-1.key")); err != nil {
		t.Fatalf("a node cannot load what kowai cert wrote: %v", err)
	}

	before, err := os.ReadFile(filepath.Join(pki, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"cert", "ca", "--out", pki}, {"cert", "node", "node-1", "--ca", pki, "--out", pki}} {
		code, _, stderr := kowai(t, dir, nil, "", args...)
		if code != 2 || !strings.Contains(stderr, "exists") {
			t.Errorf("%v over existing files: exit %d, stderr %q; want exit 2 and a refusal", args, code, stderr)
		}
	}
	if after, err := os.ReadFile(filepath.Join(pki, "ca.key")); err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the CA key changed: %v", err)
	}
}

func TestCertBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args     []string
		mentions string
	}{
		{[]string{"cert"}, "cert ca"},
		{[]string{"cert", "sign"}, "unknown action"},
		{[]string{"cert", "node"}, "NAME"},
		{[]string{"cert", "node", "../evil", "--ca", dir}, "node name"},
		{[]string{"cert", "node", "n1", "--ca", filepath.Join(dir, "none")}, "--ca"},
		{[]string{"cert", "ca", "extra"}, "unexpected argument"},
		{[]string{"cert", "node", "n1", "n2", "--ca", dir}, "unexpected argument \"n2\""},
	} {
		code, _, stderr := kowai(t, dir, nil, "", tc.args...)
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != 2 || len(lines) != 1 || !strings.Contains(stderr, tc.mentions) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line mentioning %q", tc.args, code, stderr, tc.mentions)
		}
	}
	if code, _, _ := kowai(t, dir, nil, "", "cert", "ca", "--out", dir); code != 0 {
		t.Fatal("cert ca failed")
	}
	code, _, stderr := kowai(t, dir, nil, "", "cert", "node", "n1", "--ca", dir, "--host", "not a host")
	if code != 2 || !strings.Contains(stderr, "--host") {
		t.Errorf("bad --host: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{{"cert", "--help"}, {"cert", "ca", "--help"}, {"cert", "node", "--help"}} {
		if code, out, _ := kowai(t, dir, nil, "", args...); code != 0 || !strings.Contains(out, "usage: kowai cert") {
			t.Errorf("%v: exit %d, out %q", args, code, out)
		}
	}
}

// A multi-node provider without the TLS variables is refused before anything is
// touched, with one line naming the variables and the escape hatch.
func TestServeRefusesClusterWithoutTLS(t *testing.T) {
	pki := t.TempDir()
	if code, _, stderr := kowai(t, pki, nil, "", "cert", "ca", "--out", pki); code != 0 {
		t.Fatal(stderr)
	}
	automanaged := []string{"KOWAI_CLUSTER_PROVIDER=automanaged", "KOWAI_CLUSTER_PEERS=127.0.0.1:6330"}
	for _, tc := range []struct {
		env      []string
		mentions string
	}{
		{automanaged, "set KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY (kowai cert makes them), or KOWAI_CLUSTER_INSECURE=true"},
		{[]string{"KOWAI_CLUSTER_PROVIDER=etcd", "KOWAI_ETCD_ENDPOINTS=127.0.0.1:2379"}, "KOWAI_CLUSTER_PROVIDER=etcd needs mutual TLS"},
		{append(automanaged, "KOWAI_CLUSTER_TLS_CA="+filepath.Join(pki, "ca.crt")), "KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY not set"},
		{append(automanaged, "KOWAI_CLUSTER_TLS_CA="+filepath.Join(pki, "ca.crt"), "KOWAI_CLUSTER_TLS_CERT="+filepath.Join(pki, "ca.crt"), "KOWAI_CLUSTER_TLS_KEY="+filepath.Join(pki, "none.key")),
			"KOWAI_CLUSTER_TLS_KEY: open"},
		{append(automanaged, "KOWAI_CLUSTER_TLS_CA="+filepath.Join(pki, "none.crt"), "KOWAI_CLUSTER_TLS_CERT="+filepath.Join(pki, "ca.crt"), "KOWAI_CLUSTER_TLS_KEY="+filepath.Join(pki, "ca.key")),
			"KOWAI_CLUSTER_TLS_CA: open"},
		{append(automanaged, "KOWAI_CLUSTER_TLS_CA="+filepath.Join(pki, "ca.crt"), "KOWAI_CLUSTER_TLS_CERT="+filepath.Join(pki, "ca.crt"), "KOWAI_CLUSTER_TLS_KEY="+filepath.Join(pki, "ca.crt")),
			"node certificate and key"},
	} {
		dir := t.TempDir()
		code, _, stderr := kowai(t, dir, append(tc.env, "KOWAI_DATA_DIR="+filepath.Join(dir, "data")), "", "serve", "--http-addr", freePort(t))
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != 2 || len(lines) != 1 || !strings.Contains(stderr, tc.mentions) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line mentioning %q", tc.env, code, stderr, tc.mentions)
		}
		if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
			t.Errorf("%v: the refused node created its data directory (%v)", tc.env, err)
		}
	}
}

// serveUntilReady runs kowai serve with env until /health/ready answers 200, then stops
// it with SIGTERM and returns its log.
func serveUntilReady(t *testing.T, env []string) string {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "KOWAI_HTTP_ADDR=" + addr, "KOWAI_LOG_FORMAT=json",
		"KOWAI_DATA_DIR=" + filepath.Join(dir, "data"), "KOWAI_DRAIN_GRACE=0s", "KOWAI_METRICS_ADDR=off",
		"KOWAI_RATE_LIMIT=6000/m"}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		logs <- b.String()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	ready := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(50 * time.Millisecond) {
		res, err := http.Get("http://" + addr + "/health/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			ready = res.StatusCode == http.StatusOK
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve did not exit 0 after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit within 30 s of SIGTERM")
	}
	out := <-logs
	if !ready {
		t.Fatalf("/health/ready never answered 200:\n%s", out)
	}
	return out
}

// An automanaged node with certificates from kowai cert joins its cluster (itself) over
// mutual TLS; with KOWAI_CLUSTER_INSECURE instead it runs too, and says loudly that it is
// insecure.
func TestServeAutomanaged(t *testing.T) {
	pki := t.TempDir()
	for _, args := range [][]string{{"cert", "ca", "--out", pki}, {"cert", "node", "n1", "--ca", pki, "--out", pki, "--host", "127.0.0.1"}} {
		if code, _, stderr := kowai(t, pki, nil, "", args...); code != 0 {
			t.Fatal(stderr)
		}
	}
	cluster := func() []string {
		membership := freePort(t)
		_, port, _ := net.SplitHostPort(freePort(t))
		return []string{"KOWAI_CLUSTER_PROVIDER=automanaged", "KOWAI_CLUSTER_PEERS=" + membership,
			"KOWAI_CLUSTER_MEMBERSHIP_ADDR=" + membership, "KOWAI_CLUSTER_ADDR=127.0.0.1:" + port}
	}
	t.Run("mutual TLS", func(t *testing.T) {
		out := serveUntilReady(t, append(cluster(), "KOWAI_CLUSTER_TLS_CA="+filepath.Join(pki, "ca.crt"),
			"KOWAI_CLUSTER_TLS_CERT="+filepath.Join(pki, "n1.crt"), "KOWAI_CLUSTER_TLS_KEY="+filepath.Join(pki, "n1.key")))
		if strings.Contains(out, "INSECURE") {
			t.Errorf("a node with TLS warned that it is insecure:\n%s", out)
		}
	})
	t.Run("insecure", func(t *testing.T) {
		out := serveUntilReady(t, append(cluster(), "KOWAI_CLUSTER_INSECURE=true"))
		if !strings.Contains(out, `"level":"WARN","msg":"INSECURE: cluster remoting`) {
			t.Errorf("an insecure node did not warn:\n%s", out)
		}
	})
}
