package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence/persisttest"
)

// nginxBinary finds Debian's nginx. Without it the test fails in CI
// (.ci/run installs it) and is skipped elsewhere, saying so.
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not found (CI=true): install Debian's nginx package (.ci/run does)")
	}
	t.Skip("SKIPPED: nginx not found; install Debian's nginx package to check deploy/nginx/kowai.conf")
	return ""
}

var (
	upstreamServer = regexp.MustCompile(`(?m)^(\s*server\s+)kowai-(\d):8080\b`)
	listenLine     = regexp.MustCompile(`(?m)^(\s*listen\s+)8080;`)
)

// nginxConfig writes a main configuration under dir that includes the
// repository's deploy/nginx/kowai.conf with its upstream servers pointed at
// nodes (kowai-1 at nodes[0], ...) and its listener at listen, and returns
// its path. Only addresses change; every directive of the file is kept.
func nginxConfig(t *testing.T, dir, listen string, nodes []string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("nginx", "kowai.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := upstreamServer.ReplaceAllStringFunc(string(raw), func(m string) string {
		sub := upstreamServer.FindStringSubmatch(m)
		i := int(sub[2][0] - '1')
		if i < 0 || i >= len(nodes) {
			t.Fatalf("kowai.conf names kowai-%s; the test has %d nodes", sub[2], len(nodes))
		}
		return sub[1] + nodes[i]
	})
	conf = listenLine.ReplaceAllString(conf, "${1}"+listen+";")
	if strings.Contains(conf, "kowai-") || !strings.Contains(conf, "listen "+listen+";") {
		t.Fatalf("could not rewrite every address of kowai.conf:\n%s", conf)
	}
	if err := os.WriteFile(filepath.Join(dir, "kowai.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the workers must read and write the temporary directory
	}
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    log_format upstream '$status $request_method $uri $upstream_addr $upstream_status';
    access_log %[2]s/access.log upstream;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/kowai.conf;
}
`, user, dir)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// nginx -t accepts the repository's configuration (addresses rewritten).
func TestNginxConfigTest(t *testing.T) {
	bin := nginxBinary(t)
	dir := t.TempDir()
	conf := nginxConfig(t, dir, freePort(t), []string{freePort(t), freePort(t), freePort(t)})
	out, err := exec.Command(bin, "-t", "-p", dir, "-c", conf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// upstreamsSeen reads nginx's access log (format "upstream" above) and counts
// the requests each upstream answered.
func upstreamsSeen(t *testing.T, dir string) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// With a retry, $upstream_addr lists every attempt: "a, b".
		addrs := strings.Split(strings.Join(fields[3:len(fields)-1], ""), ",")
		seen[addrs[len(addrs)-1]]++
	}
	return seen
}

// wsFrame is a server frame of /api/v1/chat/ws.
type wsFrame struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	Delta          string `json:"delta"`
	ConversationID string `json:"conversation_id"`
	Response       string `json:"response"`
	Status         int    `json:"status"`
	Detail         string `json:"detail"`
}

// wsTurn runs one chat turn over a WebSocket through base and checks that
// tokens streamed before the done frame.
func wsTurn(t *testing.T, base, token, conversationID string) error {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	c, res, err := fws.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/v1/chat/ws", h)
	if err != nil {
		return fmt.Errorf("dial: %w (%v)", err, res)
	}
	defer c.Close()
	msg, err := json.Marshal(map[string]string{"type": "message", "id": "m1", "content": "Hello through nginx", "conversation_id": conversationID})
	if err != nil {
		return err
	}
	if err := c.WriteMessage(fws.TextMessage, msg); err != nil {
		return err
	}
	var streamed strings.Builder
	for {
		if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			return err
		}
		var f wsFrame
		if err := c.ReadJSON(&f); err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		switch f.Type {
		case "token":
			streamed.WriteString(f.Delta)
		case "done":
			if streamed.Len() == 0 || streamed.String() != f.Response {
				return fmt.Errorf("streamed %q, response %q", streamed.String(), f.Response)
			}
			return nil
		default:
			return fmt.Errorf("unexpected frame %+v", f)
		}
	}
}

// Debian's nginx with the repository's configuration in front of three
// `kowai serve` processes (etcd provider, shared MariaDB): REST and WebSocket
// turns work through it, request IDs pass through, every node gets traffic;
// after one node is killed, nginx routes around it and every request
// succeeds.
func TestNginxInFrontOfThreeNodes(t *testing.T) {
	bin := nginxBinary(t)
	kowai := kowaiBinary(t)
	dbURL := persisttest.MySQLURL(t)
	etcd := clustertest.StartEtcd(t)
	dir := t.TempDir()
	certs := clustertest.NewCerts(t)

	common := []string{
		"KOWAI_DATABASE_URL=" + dbURL,
		"KOWAI_JWT_SECRET=" + strings.Repeat("s", 40),
		"KOWAI_CLUSTER_PROVIDER=etcd",
		"KOWAI_ETCD_ENDPOINTS=" + strings.Join(etcd, ","),
		"KOWAI_CLUSTER_NAME=nginx-e2e",
		// Mutual TLS between the nodes, as in the compose cluster.
		"KOWAI_CLUSTER_TLS_CA=" + certs.CAFile,
		"KOWAI_CLUSTER_TLS_CERT=" + certs.CertFile,
		"KOWAI_CLUSTER_TLS_KEY=" + certs.KeyFile,
		"KOWAI_METRICS_ADDR=off",
		"KOWAI_TRUSTED_PROXIES=127.0.0.1/32",
		"KOWAI_LOG_LEVEL=warn",
	}
	if code, out := runOnce(t, dir, common, kowai, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: exit %d\n%s", code, out)
	}
	var nodes []*process
	var addrs []string
	for i := range 3 {
		addr := freePort(t)
		addrs = append(addrs, addr)
		env := append(copyOf(common), "KOWAI_HTTP_ADDR="+addr, "KOWAI_CLUSTER_ADDR="+freePort(t))
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, start(t, nodeDir, env, kowai, "serve"))
	}
	for i, n := range nodes {
		waitHTTP(t, n, "http://"+addrs[i]+"/health/ready")
	}

	ngDir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(ngDir, 0o755); err != nil {
		t.Fatal(err)
	}
	listen := freePort(t)
	conf := nginxConfig(t, ngDir, listen, addrs)
	ng := start(t, ngDir, nil, bin, "-p", ngDir, "-c", conf)
	base := "http://" + listen
	waitHTTP(t, ng, base+"/health/live")

	// REST through nginx: sign up, a new conversation, a follow-up turn.
	token := signUp(t, base, "lb@example.com")
	var first, second turnResult
	if code := call(t, http.MethodPost, base+"/api/v1/chat/message", token, map[string]string{"content": "hello"}, &first); code != http.StatusOK || first.ConversationID == "" {
		t.Fatalf("first turn: %d %+v", code, first)
	}
	if code := call(t, http.MethodPost, base+"/api/v1/chat/message", token, map[string]string{"content": "and then?", "conversation_id": first.ConversationID}, &second); code != http.StatusOK {
		t.Fatalf("second turn: %d", code)
	}
	// WebSocket through nginx (the upgrade passes, tokens stream).
	if err := wsTurn(t, base, token, first.ConversationID); err != nil {
		t.Fatalf("WebSocket turn through nginx: %v", err)
	}

	// Request IDs: the client's passes through; without one, nginx's.
	req, err := http.NewRequest(http.MethodGet, base+"/health/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-ID", "ops-trace-0001")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if got := res.Header.Get("X-Request-ID"); got != "ops-trace-0001" {
		t.Errorf("X-Request-ID %q came back as %q", "ops-trace-0001", got)
	}
	res, err = http.Get(base + "/health/live")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if got := res.Header.Get("X-Request-ID"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
		t.Errorf("without a client request ID, want nginx's $request_id; got %q", got)
	}
	if res, err := http.Get(base + "/metrics"); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics through nginx: %v %v; want 404", err, res)
	}

	// Every node answered some of the requests so far.
	for range 6 {
		if code := call(t, http.MethodGet, base+"/api/v1/chat/conversations", token, nil, nil); code != http.StatusOK {
			t.Fatalf("list conversations: %d", code)
		}
	}
	seen := upstreamsSeen(t, ngDir)
	for _, a := range addrs {
		if seen[a] == 0 {
			t.Errorf("nginx sent nothing to %s: %v", a, seen)
		}
	}

	// Kill a node. Its grains come back on the survivors (the provider
	// notices within seconds); after that, nginx routes around the dead
	// node and no request fails.
	nodes[0].kill(t)
	testenv.Eventually(t, 60*time.Second, func() error {
		var r turnResult
		if code := call(t, http.MethodPost, base+"/api/v1/chat/message", token, map[string]string{"content": "still there?", "conversation_id": first.ConversationID}, &r); code != http.StatusOK {
			return fmt.Errorf("turn after the kill: %d", code)
		}
		return nil
	})
	before := upstreamsSeen(t, ngDir)[addrs[0]]
	// Past fail_timeout nginx tries the dead node again with a live
	// request, which must go on to a survivor instead of failing: keep
	// going for longer than that.
	m := regexp.MustCompile(`fail_timeout=(\d+)s`).FindStringSubmatch(readFile(t, filepath.Join("nginx", "kowai.conf")))
	if m == nil {
		t.Fatal("kowai.conf sets no fail_timeout")
	}
	failTimeout, err := time.ParseDuration(m[1] + "s")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(failTimeout + 3*time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		var r turnResult
		switch i % 3 {
		case 0:
			if code := call(t, http.MethodPost, base+"/api/v1/chat/message", token, map[string]string{"content": "again", "conversation_id": first.ConversationID}, &r); code != http.StatusOK {
				t.Fatalf("request %d after the kill: turn %d", i, code)
			}
		case 1:
			if code := call(t, http.MethodGet, base+"/api/v1/chat/history?conversation_id="+first.ConversationID, token, nil, nil); code != http.StatusOK {
				t.Fatalf("request %d after the kill: history %d", i, code)
			}
		case 2:
			if err := wsTurn(t, base, token, first.ConversationID); err != nil {
				t.Fatalf("request %d after the kill: WebSocket %v", i, err)
			}
		}
		time.Sleep(200 * time.Millisecond) // paced: a few requests a second, not a load test
	}
	if after := upstreamsSeen(t, ngDir)[addrs[0]]; after != before {
		t.Errorf("nginx logged %d answers from the dead node", after-before)
	}
}

// copyOf returns a copy of s, so appends to it do not share a backing array.
func copyOf(s []string) []string { return append([]string(nil), s...) }

// runOnce runs a command to completion with env and returns its exit code
// and combined output.
func runOnce(t *testing.T, dir string, env []string, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
