package clustertest_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
)

// memberIDs returns the IDs n sees as members.
func memberIDs(n *cluster.Node) map[string]bool {
	ids := map[string]bool{}
	for _, m := range n.Info().Members {
		ids[m.ID] = true
	}
	return ids
}

// Two automanaged nodes with certificates from one CA form a cluster and call each
// other's grains. A node with a certificate from another CA, or with none, lists them as
// peers but never joins: neither side sees the other, and a request it sends straight to
// a grain's PID on a member gets no answer.
func TestTLSClusterRefusesStrangers(t *testing.T) {
	t.Parallel()
	members := clustertest.Start(t, clustertest.Options{Provider: cluster.ProviderAutomanaged, Nodes: 2})
	checkRemoteCalls(t, members)

	for _, tc := range []struct {
		name      string
		configure func(cfg *cluster.Config)
	}{
		{"certificate from another CA", func(cfg *cluster.Config) { cfg.TLS = clustertest.NewCerts(t).TLS(t) }},
		{"no certificate", func(cfg *cluster.Config) { cfg.TLS, cfg.Insecure = nil, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own := fmt.Sprintf("127.0.0.1:%d", clustertest.FreePorts(t, 1)[0])
			stranger := clustertest.Start(t, clustertest.Options{Provider: cluster.ProviderAutomanaged, Configure: func(_ int, cfg *cluster.Config) {
				cfg.Peers = []string{members[0].MembershipAddr(), members[1].MembershipAddr(), own}
				cfg.MembershipAddr = own
				cfg.RequestTimeout = time.Second
				tc.configure(cfg)
			}})[0]

			// Membership is polled every second: three rounds would have let it in.
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if ids := memberIDs(stranger); len(ids) != 1 {
					t.Fatalf("the stranger sees %d members: %v", len(ids), ids)
				}
				for _, m := range members {
					if ids := memberIDs(m); ids[stranger.ID()] || len(ids) != 2 {
						t.Fatalf("member %s sees %v, stranger %s", m.ID(), ids, stranger.ID())
					}
				}
			}

			// A grain on members[1], reached from members[0] (the control) and from the stranger.
			var pid = members[0].Cluster().Get("tls-probe", clustertest.EchoKind)
			for i := 0; pid == nil || pid.Address != members[1].Address(); i++ {
				pid = members[0].Cluster().Get(fmt.Sprintf("tls-probe-%d", i), clustertest.EchoKind)
			}
			if _, err := members[0].Cluster().ActorSystem.Root.RequestFuture(pid, &testpb.EchoRequest{Text: "member"}, 3*time.Second).Result(); err != nil {
				t.Fatalf("member to member: %v", err)
			}
			res, err := stranger.Cluster().ActorSystem.Root.RequestFuture(pid, &testpb.EchoRequest{Text: "stranger"}, 2*time.Second).Result()
			if err == nil {
				t.Fatalf("the stranger's request reached a member's grain: %v", res)
			}
		})
	}
}

// A client without a certificate from the cluster CA is refused at the TLS handshake by
// the remoting port and the membership endpoint, whether it speaks TLS or plaintext; a
// client with one gets through (the control).
func TestTLSHandshakeRefusesClientsWithoutCertificate(t *testing.T) {
	t.Parallel()
	certs := clustertest.NewCerts(t)
	node := clustertest.Start(t, clustertest.Options{Provider: cluster.ProviderAutomanaged, TLS: certs.TLS(t)})[0]
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(caPEM)
	clientCert, err := tls.LoadX509KeyPair(certs.CertFile, certs.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	trusting := &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}}
	withCert := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}}

	t.Run("raw TLS to remoting", func(t *testing.T) {
		conn, err := tls.Dial("tcp", node.Address(), trusting)
		if err == nil {
			// TLS 1.3 reports the server's refusal of the client after the handshake.
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("TLS without a client certificate: err = %v, want the server's certificate required alert", err)
		}
	})

	t.Run("gRPC to remoting", func(t *testing.T) {
		// No service answers this method: a client that got through hears Unimplemented.
		call := func(creds credentials.TransportCredentials) error {
			conn, err := grpc.NewClient(node.Address(), grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			return conn.Invoke(t.Context(), "/remote.Remoting/Probe", &emptypb.Empty{}, &emptypb.Empty{})
		}
		if err := call(credentials.NewTLS(withCert)); status.Code(err) != codes.Unimplemented {
			t.Fatalf("gRPC with the cluster certificate: %v, want Unimplemented", err)
		}
		for name, creds := range map[string]credentials.TransportCredentials{
			"TLS without a client certificate": credentials.NewTLS(trusting),
			"plaintext":                        insecure.NewCredentials(),
		} {
			if err := call(creds); status.Code(err) != codes.Unavailable {
				t.Errorf("gRPC %s: %v, want Unavailable (refused at the handshake)", name, err)
			}
		}
	})

	t.Run("membership endpoint", func(t *testing.T) {
		get := func(scheme string, cfg *tls.Config) (int, string, error) {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
			defer client.CloseIdleConnections()
			resp, err := client.Get(scheme + "://" + node.MembershipAddr() + "/_health")
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), err
		}
		if code, body, err := get("https", withCert); err != nil || code != http.StatusOK || !strings.Contains(body, node.ID()) {
			t.Fatalf("membership with the cluster certificate: %d %q %v", code, body, err)
		}
		if code, body, err := get("https", &tls.Config{RootCAs: roots}); err == nil {
			t.Errorf("membership over TLS without a client certificate answered %d %q", code, body)
		}
		// The server answers plaintext with a 400 and nothing else.
		if code, body, err := get("http", nil); err == nil && (code == http.StatusOK || strings.Contains(body, node.ID())) {
			t.Errorf("membership over plaintext answered %d %q", code, body)
		}
	})
}
