package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
)

// membershipPath is where a node describes itself to its peers (the automanaged
// provider's protocol).
const membershipPath = "/_health"

// membershipTimeout bounds one poll of one peer.
const membershipTimeout = 2 * time.Second

// nodeModel is a node's description on its membership endpoint. The JSON is the
// library's automanaged NodeModel, so the protocol stays that provider's.
type nodeModel struct {
	ID             string   `json:"id"`
	Address        string   `json:"address"`
	AutoManagePort int      `json:"auto_manage_port"`
	Port           int      `json:"port"`
	Kinds          []string `json:"kinds"`
	ClusterName    string   `json:"cluster_name"`
}

// membership is the automanaged membership provider. Each node serves its own
// description on its membership endpoint and polls every peer's, once per refresh; the
// members that answer form the topology.
//
// It replaces the library's automanaged provider, whose HTTP client is fixed to
// plaintext: with TLS set, the endpoint is served over mutual TLS (a client certificate
// signed by the cluster CA is required before any request is read) and the peers are
// polled with the node's certificate, verifying theirs. Without TLS it speaks plain HTTP,
// as the library's provider does.
type membership struct {
	name    string
	peers   []string
	refresh time.Duration
	ln      net.Listener
	port    int
	tls     *TLS
	log     *slog.Logger
	client  *http.Client
	srv     *http.Server

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	mu      sync.Mutex
	c       *cluster.Cluster
	failing map[string]bool
}

var _ cluster.ClusterProvider = (*membership)(nil)

// newMembership returns a provider serving on ln, which it owns from now on.
func newMembership(name string, ln net.Listener, peers []string, refresh time.Duration, t *TLS, logger *slog.Logger) *membership {
	transport := &http.Transport{
		DialContext:     (&net.Dialer{Timeout: membershipTimeout, KeepAlive: 5 * time.Second}).DialContext,
		MaxIdleConns:    len(peers),
		IdleConnTimeout: 90 * time.Second,
	}
	if t != nil {
		transport.TLSClientConfig = t.ClientConfig()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &membership{
		name:    name,
		peers:   peers,
		refresh: refresh,
		ln:      ln,
		port:    ln.Addr().(*net.TCPAddr).Port,
		tls:     t,
		log:     logger,
		client:  &http.Client{Transport: transport, Timeout: membershipTimeout},
		ctx:     ctx,
		cancel:  cancel,
		failing: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+membershipPath, m.describe)
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		// The server reports refused handshakes through ErrorLog.
		ErrorLog: log.New(refusalWriter{logger}, "", 0),
	}
	if t != nil {
		m.srv.TLSConfig = t.ServerConfig()
	}
	return m
}

// refusalWriter turns the HTTP server's error lines (mostly refused TLS handshakes)
// into static-message log records.
type refusalWriter struct{ log *slog.Logger }

func (w refusalWriter) Write(p []byte) (int, error) {
	w.log.Warn("membership endpoint refused a connection", "error", string(bytes.TrimSpace(p)))
	return len(p), nil
}

func (m *membership) describe(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	c := m.c
	m.mu.Unlock()
	if c == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// A failed write means the peer hung up; it polls again.
	_ = json.NewEncoder(w).Encode(nodeModel{ID: c.ActorSystem.ID, Address: host, Port: port,
		AutoManagePort: m.port, Kinds: c.GetClusterKinds(), ClusterName: m.name})
}

// StartMember serves the membership endpoint and starts polling the peers.
func (m *membership) StartMember(c *cluster.Cluster) error {
	m.mu.Lock()
	m.c = c
	m.mu.Unlock()
	go func() {
		var err error
		if m.tls != nil {
			err = m.srv.ServeTLS(m.ln, "", "")
		} else {
			err = m.srv.Serve(m.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("membership endpoint stopped", "error", err)
		}
	}()
	go m.poll()
	return nil
}

// StartClient is not used: every kowai node is a member.
func (m *membership) StartClient(c *cluster.Cluster) error {
	m.mu.Lock()
	m.c = c
	m.mu.Unlock()
	go m.poll()
	return nil
}

// Shutdown stops polling and closes the endpoint. It is idempotent.
func (m *membership) Shutdown(bool) error {
	var err error
	m.once.Do(func() {
		m.cancel()
		err = m.srv.Close()
		m.client.CloseIdleConnections()
	})
	return err
}

func (m *membership) poll() {
	for {
		m.refreshTopology()
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(m.refresh):
		}
	}
}

// refreshTopology asks every peer for its description and publishes the members that
// answered. When none answers (this node's own endpoint included) the topology is left
// as it is: that is this node's problem, not the cluster's.
func (m *membership) refreshTopology() {
	nodes := make([]*nodeModel, len(m.peers))
	errs := make([]error, len(m.peers))
	var wg sync.WaitGroup
	for i, peer := range m.peers {
		wg.Go(func() { nodes[i], errs[i] = m.fetch(peer) })
	}
	wg.Wait()
	if m.ctx.Err() != nil {
		return
	}
	var members []*cluster.Member
	m.mu.Lock()
	c := m.c
	for i, peer := range m.peers {
		switch {
		case errs[i] != nil && !m.failing[peer]:
			m.log.Warn("membership poll failed", "peer", peer, "error", errs[i])
		case errs[i] != nil:
			m.log.Debug("membership poll failed", "peer", peer, "error", errs[i])
		case m.failing[peer]:
			m.log.Info("membership poll recovered", "peer", peer)
		}
		m.failing[peer] = errs[i] != nil
		if n := nodes[i]; n != nil && n.ClusterName == m.name {
			members = append(members, &cluster.Member{Id: n.ID, Host: n.Address, Port: int32(n.Port), Kinds: n.Kinds})
		}
	}
	m.mu.Unlock()
	if len(members) == 0 {
		return
	}
	c.MemberList.UpdateClusterTopology(members)
}

func (m *membership) fetch(peer string) (*nodeModel, error) {
	scheme := "http"
	if m.tls != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(m.ctx, http.MethodGet, scheme+"://"+peer+membershipPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	var n nodeModel
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&n); err != nil {
		return nil, fmt.Errorf("decode node description: %w", err)
	}
	return &n, nil
}
