// Package certgen creates the certificates of a cluster's mutual TLS: a CA
// and node certificates signed by it, ECDSA P-256, as PEM files readable by
// their owner only. It serves `kowai cert` and the tests that start
// multi-node clusters; production deployments may use any CA instead.
//
// # Example
//
//	ca, err := certgen.NewCA("kowai cluster CA", time.Now())
//	node, err := certgen.NewNode(ca, "node-1", []string{"10.0.0.5", "node-1.internal"}, time.Now())
//	err = node.Write(dir, "node-1") // node-1.crt, node-1.key
package certgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Validity of the certificates this package creates.
const (
	CAValidity   = 5 * 365 * 24 * time.Hour
	NodeValidity = 365 * 24 * time.Hour
	// backdate covers clocks of other nodes that run slightly behind.
	backdate = time.Hour
)

// File names of a CA in its directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// ErrInvalid means a name, host or file given to the package is unusable; the
// message says which and why.
var ErrInvalid = errors.New("certgen: invalid input")

// Pair is a certificate with its private key, parsed and as PEM.
type Pair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA returns a self-signed CA certificate named name, valid from now for
// CAValidity, that may sign node certificates only (path length 0).
func NewCA(name string, now time.Time) (*Pair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"kowai"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, nil)
}

// NewNode returns a certificate for the node called name, signed by ca and valid
// from now for NodeValidity (never beyond the CA's own expiry). A node both
// serves and dials, so the certificate is good for server and client
// authentication. Its subject alternative names are name (when it is a host
// name) and every entry of hosts, each an IP address or a DNS name.
func NewNode(ca *Pair, name string, hosts []string, now time.Time) (*Pair, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"kowai"}},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(NodeValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if dnsName.MatchString(name) {
		tmpl.DNSNames = append(tmpl.DNSNames, name)
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		case dnsName.MatchString(h):
			if !slices.Contains(tmpl.DNSNames, h) {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		default:
			return nil, fmt.Errorf("%w: host %q: want an IP address or a DNS name", ErrInvalid, h)
		}
	}
	if len(tmpl.DNSNames) == 0 && len(tmpl.IPAddresses) == 0 {
		return nil, fmt.Errorf("%w: the certificate names no host: give at least one host", ErrInvalid)
	}
	return sign(tmpl, ca)
}

// dnsName is a host name, optionally with a leading wildcard label.
var dnsName = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// fileName is what a node name may be: it names the node's files.
var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckName returns an error wrapping ErrInvalid unless name can name a node and
// its files: letters, digits, '.', '_' and '-', starting with a letter or digit.
func CheckName(name string) error {
	if !fileName.MatchString(name) {
		return fmt.Errorf("%w: node name %q: want letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// sign creates tmpl's key and certificate, self-signed when ca is nil.
func sign(tmpl *x509.Certificate, ca *Pair) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Write writes the pair to dir as base.crt and base.key, mode 0600, creating
// dir (mode 0700) when missing. It never overwrites: when either file exists it
// writes nothing and returns an error wrapping os.ErrExist. It returns the two
// paths.
func (p *Pair) Write(dir, base string) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	certFile, keyFile = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Lstat(f); err == nil {
			return "", "", fmt.Errorf("%s: %w; remove it or write elsewhere", f, os.ErrExist)
		}
	}
	if err := writeNew(keyFile, p.KeyPEM); err != nil {
		return "", "", err
	}
	if err := writeNew(certFile, p.CertPEM); err != nil {
		return "", "", errors.Join(err, os.Remove(keyFile))
	}
	return certFile, keyFile, nil
}

func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", path, err), f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadCA reads a CA written by Write (dir/ca.crt and dir/ca.key).
func LoadCA(dir string) (*Pair, error) {
	certFile, keyFile := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s and %s: %w", ErrInvalid, certFile, keyFile, err)
	}
	key, ok := kp.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: want an ECDSA key", ErrInvalid, keyFile)
	}
	cert, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, certFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%w: %s is not a CA certificate", ErrInvalid, certFile)
	}
	return &Pair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}
