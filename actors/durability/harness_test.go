package durability

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence/persisttest"
)

const (
	adminEmail    = "admin@durability.test"
	adminPassword = "durability admin password"
	userPassword  = "durability user password"
	// readyTimeout bounds a node's start: database, migrations check, cluster join.
	readyTimeout = 60 * time.Second
)

// kowaiCluster is a set of `kowai serve` processes on loopback sharing one fresh MariaDB
// database. Nodes beyond the first started ones are spares that a test starts later;
// every node lists all of them as peers from the start, as an operator adding nodes to
// an automanaged cluster would.
type kowaiCluster struct {
	t        *testing.T
	bin      string
	provider string
	dbURL    string
	secret   string
	etcd     []string
	nodes    []*kowaiNode
	client   *http.Client
	admin    string
}

// kowaiNode is one `kowai serve` process and its addresses.
type kowaiNode struct {
	index       int
	httpURL     string
	metricsURL  string
	clusterAddr string
	membership  string
	env         []string

	mu   sync.Mutex
	proc *clustertest.Process
	// up is set once the node served /health/ready; dead once it was killed.
	up, dead atomic.Bool
}

// newCluster prepares total nodes (none started) on a fresh migrated database with an
// admin account. provider is "automanaged" or "etcd".
func newCluster(t *testing.T, bin, provider string, total int) *kowaiCluster {
	t.Helper()
	c := &kowaiCluster{t: t, bin: bin, provider: provider, dbURL: persisttest.MySQLURL(t), secret: randomHex(t, 32),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 128}}}
	t.Cleanup(c.client.CloseIdleConnections)
	if provider == "etcd" {
		c.etcd = clustertest.StartEtcd(t)
	}
	// Every node shares one certificate from one test CA, as an operator may.
	certs := clustertest.NewCerts(t)
	ports := clustertest.FreePorts(t, 4*total)
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	var peers []string
	for i := range total {
		peers = append(peers, addr(ports[4*i+2]))
	}
	for i := range total {
		n := &kowaiNode{index: i, httpURL: "http://" + addr(ports[4*i]), metricsURL: "http://" + addr(ports[4*i+3]),
			clusterAddr: addr(ports[4*i+1]), membership: peers[i]}
		n.env = append(append(c.baseEnv(), certs.Env()...),
			"KOWAI_HTTP_ADDR="+addr(ports[4*i]),
			"KOWAI_METRICS_ADDR="+addr(ports[4*i+3]),
			"KOWAI_CLUSTER_PROVIDER="+provider,
			"KOWAI_CLUSTER_ADDR="+n.clusterAddr,
		)
		switch provider {
		case "automanaged":
			n.env = append(n.env, "KOWAI_CLUSTER_PEERS="+strings.Join(peers, ","), "KOWAI_CLUSTER_MEMBERSHIP_ADDR="+n.membership)
		case "etcd":
			n.env = append(n.env, "KOWAI_ETCD_ENDPOINTS="+strings.Join(c.etcd, ","))
		}
		c.nodes = append(c.nodes, n)
	}
	c.command("", "migrate", "up")
	c.command(adminPassword+"\n", "user", "create", "--email", adminEmail, "--role", "admin", "--name", "Admin")
	return c
}

// baseEnv is the configuration every node and command shares.
func (c *kowaiCluster) baseEnv() []string {
	return []string{
		"KOWAI_DATABASE_URL=" + c.dbURL,
		"KOWAI_JWT_SECRET=" + c.secret,
		"KOWAI_AUTO_MIGRATE=false",
		"KOWAI_CLUSTER_NAME=kowai-durability",
		// Fifty conversations of five users must not meet the per-user limit.
		"KOWAI_RATE_LIMIT=100000/m",
		"KOWAI_LLM_PROVIDER=offline",
		"KOWAI_LOG_FORMAT=text",
		"KOWAI_LOG_LEVEL=info",
		"KOWAI_DATA_DIR=" + c.t.TempDir(),
	}
}

// command runs a one-shot kowai command against the cluster's database.
func (c *kowaiCluster) command(stdin string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(cmd.Environ(), c.baseEnv()...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("kowai %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// start starts nodes and waits until each is ready and every live node sees every
// started node as a member.
func (c *kowaiCluster) start(nodes ...*kowaiNode) {
	c.t.Helper()
	for _, n := range nodes {
		n.mu.Lock()
		n.proc = clustertest.StartProcess(c.t, c.bin, n.env, "serve")
		n.mu.Unlock()
	}
	for _, n := range nodes {
		testenv.Eventually(c.t, readyTimeout, func() error {
			return c.get(n, "/health/ready", "", nil)
		})
		n.up.Store(true)
	}
	if c.admin == "" {
		c.admin = c.login(nodes[0], adminEmail, adminPassword)
	}
	c.waitMembers(readyTimeout)
}

// kill ends node n with SIGKILL, as a crash would.
func (c *kowaiCluster) kill(n *kowaiNode) {
	n.dead.Store(true)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.proc.Kill()
}

// live returns the nodes that are up and not killed.
func (c *kowaiCluster) live() []*kowaiNode {
	var out []*kowaiNode
	for _, n := range c.nodes {
		if n.up.Load() && !n.dead.Load() {
			out = append(out, n)
		}
	}
	return out
}

// clusterInfo is the part of GET /api/v1/admin/cluster the tests read.
type clusterInfo struct {
	Self    member   `json:"self"`
	Members []member `json:"members"`
	// Activations counts the grains alive on the node, per kind.
	Activations map[string]int `json:"activations"`
}

type member struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds"`
}

func (c *kowaiCluster) info(n *kowaiNode) (clusterInfo, error) {
	var info clusterInfo
	err := c.get(n, "/api/v1/admin/cluster", c.admin, &info)
	return info, err
}

// waitMembers waits until every live node's member list is exactly the live nodes.
func (c *kowaiCluster) waitMembers(timeout time.Duration) {
	c.t.Helper()
	testenv.Eventually(c.t, timeout, func() error {
		live := c.live()
		want := map[string]bool{}
		for _, n := range live {
			want[n.clusterAddr] = true
		}
		for _, n := range live {
			info, err := c.info(n)
			if err != nil {
				return err
			}
			got := map[string]bool{}
			for _, m := range info.Members {
				got[m.Address] = true
			}
			if len(got) != len(want) {
				return fmt.Errorf("node %d sees members %v, want %v", n.index, got, want)
			}
			for a := range want {
				if !got[a] {
					return fmt.Errorf("node %d does not see %s", n.index, a)
				}
			}
		}
		return nil
	})
}

// metric sums the samples of a Prometheus counter or gauge over the live nodes.
func (c *kowaiCluster) metric(name string) float64 {
	c.t.Helper()
	sample := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	var sum float64
	for _, n := range c.live() {
		resp, err := c.client.Get(n.metricsURL + "/metrics")
		if err != nil {
			c.t.Fatalf("metrics of node %d: %v", n.index, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			c.t.Fatalf("metrics of node %d: %v", n.index, err)
		}
		for _, m := range sample.FindAllSubmatch(body, -1) {
			v, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				c.t.Fatalf("metric %s: %v", name, err)
			}
			sum += v
		}
	}
	return sum
}

// register creates a user through the API and logs in, returning an access token.
func (c *kowaiCluster) register(n *kowaiNode, email string) string {
	c.t.Helper()
	body := map[string]string{"email": email, "password": userPassword, "name": email}
	if status, raw, err := c.do(c.t.Context(), n, http.MethodPost, "/api/v1/auth/register", "", "", body); err != nil || status != http.StatusCreated {
		c.t.Fatalf("register %s: %d %s %v", email, status, raw, err)
	}
	return c.login(n, email, userPassword)
}

func (c *kowaiCluster) login(n *kowaiNode, email, password string) string {
	c.t.Helper()
	status, raw, err := c.do(c.t.Context(), n, http.MethodPost, "/api/v1/auth/login", "", "",
		map[string]string{"email": email, "password": password})
	if err != nil || status != http.StatusOK {
		c.t.Fatalf("login %s: %d %s %v", email, status, raw, err)
	}
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &pair); err != nil || pair.AccessToken == "" {
		c.t.Fatalf("login %s: %s %v", email, raw, err)
	}
	return pair.AccessToken
}

// get fetches path from n and decodes a 200 answer into out (when not nil).
func (c *kowaiCluster) get(n *kowaiNode, path, token string, out any) error {
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
	defer cancel()
	status, raw, err := c.do(ctx, n, http.MethodGet, path, token, "", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s on node %d: %d %s", path, n.index, status, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// do sends one request and returns the status and body.
func (c *kowaiCluster) do(ctx context.Context, n *kowaiNode, method, path, token, key string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.httpURL+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// historyMessage is one message of GET /api/v1/chat/history.
type historyMessage struct {
	ID      string `json:"id"`
	Seq     int64  `json:"seq"`
	Role    string `json:"role"`
	Content string `json:"content"`
}

// history reads a conversation's whole log, page by page, from any live node.
func (c *kowaiCluster) history(token, convID string) ([]historyMessage, error) {
	var all []historyMessage
	cursor := ""
	for range 100 {
		q := url.Values{"conversation_id": {convID}, "limit": {"200"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Messages   []historyMessage `json:"messages"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := c.get(c.live()[0], "/api/v1/chat/history?"+q.Encode(), token, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Messages...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
	return nil, fmt.Errorf("history of %s: more than 100 pages", convID)
}

// owner returns which of the member addresses hosts the grain kind/identity: the
// cluster library's rendezvous hash (FNV-1a 32 of the identity, then the member's
// address; the highest score wins), so a test knows where a grain lives without asking
// the grain.
func owner(identity string, addresses []string) string {
	var best string
	var bestScore uint32
	for _, a := range addresses {
		h := fnv.New32a()
		_, _ = h.Write([]byte(identity)) // a hash never fails to write
		_, _ = h.Write([]byte(a))
		if s := h.Sum32(); best == "" || s > bestScore {
			best, bestScore = a, s
		}
	}
	return best
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
