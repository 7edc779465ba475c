package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrInsecure means a multi-node cluster was configured without mutual TLS and without
// Config.Insecure. It wraps ErrConfig.
var ErrInsecure = fmt.Errorf("%w: a multi-node cluster needs mutual TLS (Config.TLS) or Config.Insecure", ErrConfig)

// TLS is the material of the cluster's mutual TLS: the cluster CA (one or more
// certificates: a bundle lets an operator move to a new CA node by node) and this node's
// certificate and key. Every node presents its certificate both when it serves and when
// it dials, and accepts a peer only when the peer's certificate chains to the CA.
//
// A TLS is immutable; load it once per process start. To rotate certificates, restart
// each node with new files signed by the same CA.
type TLS struct {
	roots *x509.CertPool
	cert  tls.Certificate
	leaf  *x509.Certificate
}

// LoadTLS reads the cluster CA, the node's certificate and its key from PEM files and
// checks that the certificate is signed by the CA, is valid now, and may serve and dial.
func LoadTLS(caFile, certFile, keyFile string) (*TLS, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read cluster CA: %w", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read node certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	return NewTLS(caPEM, certPEM, keyPEM)
}

// NewTLS is LoadTLS over PEM already in memory.
func NewTLS(caPEM, certPEM, keyPEM []byte) (*TLS, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("cluster CA: no PEM certificate found")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate and key: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("node certificate: %w", err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("node certificate chain: %w", err)
		}
		inter.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Now(),
			KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("node certificate %q does not verify against the cluster CA for %s: %w",
				leaf.Subject.CommonName, usageName(usage), err)
		}
	}
	return &TLS{roots: roots, cert: cert, leaf: leaf}, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "serving"
	}
	return "dialing"
}

// NotAfter returns when the node certificate expires.
func (t *TLS) NotAfter() time.Time { return t.leaf.NotAfter }

// ServerConfig returns the configuration of the node's listeners: TLS 1.3, the node's
// certificate, and a client certificate required and verified against the cluster CA.
func (t *TLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		ClientCAs:    t.roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// ClientConfig returns the configuration for dialing other members: TLS 1.3, the node's
// certificate as client certificate, and the server verified against the cluster CA and
// the host name or IP address dialed.
func (t *TLS) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		RootCAs:      t.roots,
	}
}
