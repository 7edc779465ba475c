package certgen

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestNewNodeHosts(t *testing.T) {
	ca, err := NewCA("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		hosts []string
		dns   []string
		ips   int
		bad   bool
	}{
		{"node-1", []string{"10.0.0.5", "::1", "node-1.internal"}, []string{"node-1", "node-1.internal"}, 2, false},
		{"node-1", []string{"node-1"}, []string{"node-1"}, 0, false},
		{"n_1", []string{"127.0.0.1"}, nil, 1, false}, // an underscore names files, not hosts
		{"n_1", nil, nil, 0, true},
		{"node", []string{"*.nodes.internal"}, []string{"node", "*.nodes.internal"}, 0, false},
		{"node", []string{"a b"}, nil, 0, true},
		{"node", []string{"-bad.example"}, nil, 0, true},
		{"../up", []string{"127.0.0.1"}, nil, 0, true},
		{".hidden", []string{"127.0.0.1"}, nil, 0, true},
	}
	for _, tc := range cases {
		p, err := NewNode(ca, tc.name, tc.hosts, time.Now())
		if tc.bad {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("NewNode(%q, %v): err = %v, want ErrInvalid", tc.name, tc.hosts, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewNode(%q, %v): %v", tc.name, tc.hosts, err)
			continue
		}
		if !slices.Equal(p.Cert.DNSNames, tc.dns) || len(p.Cert.IPAddresses) != tc.ips {
			t.Errorf("NewNode(%q, %v): DNS %v IPs %v, want %v and %d IPs", tc.name, tc.hosts, p.Cert.DNSNames, p.Cert.IPAddresses, tc.dns, tc.ips)
		}
		if p.Cert.NotAfter.After(ca.Cert.NotAfter) {
			t.Errorf("node certificate outlives its CA")
		}
	}
}

func TestWriteNeverOverwrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := NewCA("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Write(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA: %v", err)
	}
	other, err := NewCA("other CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Write(dir, "ca"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second Write: %v, want os.ErrExist", err)
	}
	if loaded, err := LoadCA(dir); err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("the CA was replaced: %v", err)
	}
	node, err := NewNode(ca, "node", []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := node.Write(dir, "node"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "node.crt"), filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "node.key"), filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); !errors.Is(err, ErrInvalid) {
		t.Fatalf("LoadCA of a node certificate: %v, want ErrInvalid", err)
	}
}
