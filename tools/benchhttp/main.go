package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kowai/kowai/persistence"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchhttp:", err)
		os.Exit(1)
	}
}

type options struct {
	kowai, loadgen, hello string
	dbs                   []string
	routes                map[string]bool
	mysqlDSN              string
	rounds, connections   int
	duration              time.Duration
}

func parseFlags(args []string) (options, error) {
	var o options
	var dbs, routes string
	fs := flag.NewFlagSet("benchhttp", flag.ContinueOnError)
	fs.StringVar(&o.kowai, "kowai", "bin/kowai", "kowai binary")
	fs.StringVar(&o.loadgen, "loadgen", "bin/loadgen", "load generator binary")
	fs.StringVar(&o.hello, "hello", "bin/hello", "bare Fiber hello world binary")
	fs.StringVar(&dbs, "db", "sqlite,mysql", "databases to run on: sqlite, mysql or both")
	fs.StringVar(&o.mysqlDSN, "mysql-dsn", os.Getenv("KOWAI_TEST_MYSQL_DSN"), "MariaDB server URL (mysql://USER:PASS@HOST:PORT/DB)")
	fs.StringVar(&routes, "routes", "live,me,conversations,new,continue", "routes to load: live, me, conversations, new (first turns), continue (continuing turns)")
	fs.IntVar(&o.rounds, "rounds", 3, "alternating pairs of runs per route")
	fs.IntVar(&o.connections, "c", 64, "concurrent connections")
	fs.DurationVar(&o.duration, "d", 3*time.Second, "length of one run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, d := range strings.Split(dbs, ",") {
		switch d = strings.TrimSpace(d); d {
		case "sqlite", "mysql":
			o.dbs = append(o.dbs, d)
		default:
			return o, fmt.Errorf("-db %q: want sqlite, mysql or both", d)
		}
	}
	o.routes = make(map[string]bool)
	for _, r := range strings.Split(routes, ",") {
		switch r = strings.TrimSpace(r); r {
		case "live", "me", "conversations", "new", "continue":
			o.routes[r] = true
		default:
			return o, fmt.Errorf("-routes: unknown route %q", r)
		}
	}
	if slices.Contains(o.dbs, "mysql") && o.mysqlDSN == "" {
		return o, errors.New("-db mysql needs -mysql-dsn or KOWAI_TEST_MYSQL_DSN")
	}
	if o.rounds < 1 || o.connections < 1 || o.duration <= 0 {
		return o, errors.New("-rounds, -c and -d must be positive")
	}
	for _, p := range []*string{&o.kowai, &o.loadgen, &o.hello} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, err
		}
		if _, err := os.Stat(abs); err != nil {
			return o, fmt.Errorf("%w (make bench-http builds it)", err)
		}
		*p = abs
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	hello, err := startHello(ctx, o.hello)
	if err != nil {
		return err
	}
	defer hello.stop()
	fmt.Fprintf(out, "kowai from outside: %d connections, %d alternating pairs of %s runs per line; load before: %s\n",
		o.connections, o.rounds, o.duration, loadavg())
	for _, db := range o.dbs {
		if err := runDB(ctx, o, db, hello, out); err != nil {
			return fmt.Errorf("%s: %w", db, err)
		}
	}
	fmt.Fprintf(out, "load after: %s\n", loadavg())
	return nil
}

// loadavg is the machine's load average, for the report.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// proc is a started server process.
type proc struct {
	cmd *exec.Cmd
	url string
}

// stop ends the process with SIGTERM and waits for it (a clean exit flushes
// kowai's log).
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func startHello(ctx context.Context, bin string) (*proc, error) {
	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start hello: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("hello did not say its address: %w", err)
	}
	return &proc{cmd: cmd, url: "http://" + strings.TrimSpace(line) + "/"}, nil
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

const (
	benchEmail    = "bench@example.com"
	benchPassword = "bench password 1"
)

// node is a running kowai serve and the database it uses.
type node struct {
	proc
	dbURL, logPath string
}

// startKowai runs kowai serve on dbURL with a loopback address, the offline
// model, limits the load never reaches, and its log (access log included)
// appended to a file in dir.
func startKowai(ctx context.Context, bin, dir, dbURL string) (*node, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "kowai.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"KOWAI_HTTP_ADDR=" + addr, "KOWAI_DATA_DIR=" + filepath.Join(dir, "data"), "KOWAI_DATABASE_URL=" + dbURL,
		"KOWAI_AUTO_MIGRATE=true", "KOWAI_JWT_SECRET=" + randomHex(32), "KOWAI_METRICS_ADDR=off",
		"KOWAI_RATE_LIMIT=1000000/s", "KOWAI_ACCESS_TOKEN_TTL=24h", "KOWAI_LLM_PROVIDER=offline",
		"KOWAI_ADMIN_EMAIL=" + benchEmail, "KOWAI_ADMIN_PASSWORD=" + benchPassword, "KOWAI_LOG_FORMAT=json"}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kowai: %w", err)
	}
	n := &node{proc: proc{cmd: cmd, url: "http://" + addr}, dbURL: dbURL, logPath: logPath}
	exited := make(chan struct{})
	go func() {
		// Process.Wait would reap the process stop waits for; a zero signal only probes.
		for cmd.Process.Signal(syscall.Signal(0)) == nil {
			time.Sleep(100 * time.Millisecond)
		}
		close(exited)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		res, err := http.Get(n.url + "/health/ready")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		select {
		case <-exited:
			err = errors.New("kowai serve exited")
		default:
		}
		if err != nil && strings.Contains(err.Error(), "exited") || time.Now().After(deadline) || ctx.Err() != nil {
			n.stop()
			tail, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("kowai did not become ready: %v\n%s", err, lastLines(tail, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// login signs the bench admin in and returns an access token and the user's ID.
func login(base string) (token, userID string, err error) {
	body, _ := json.Marshal(map[string]string{"email": benchEmail, "password": benchPassword})
	res, err := http.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", "", fmt.Errorf("login answered %d", res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	var me struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&me); err != nil || me.ID == "" {
		return "", "", fmt.Errorf("auth/me answered %d", res.StatusCode)
	}
	return tok.AccessToken, me.ID, nil
}

// mysqlDatabase creates a database of its own on the server of dsn and
// returns its URL and a function that drops it.
func mysqlDatabase(ctx context.Context, dsn string) (string, func(), error) {
	base, err := url.Parse(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("MariaDB URL: %w", err)
	}
	admin := *base
	admin.Path = "/information_schema"
	db, err := persistence.Open(ctx, admin.String(), persistence.Options{})
	if err != nil {
		return "", nil, err
	}
	name := "kowai_bench_" + randomHex(6)
	// name is generated here, never input.
	if _, err := db.SQL.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		_ = db.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.SQL.ExecContext(dctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			fmt.Fprintf(os.Stderr, "benchhttp: drop database %s: %v\n", name, err)
		}
		_ = db.Close()
	}
	u := *base
	u.Path = "/" + name
	return u.String(), drop, nil
}

// result is what the load generator prints (see tools/benchhttp/loadgen).
type result struct {
	Requests  int64           `json:"requests"`
	Failures  int64           `json:"failures"`
	FirstErr  string          `json:"first_error"`
	Seconds   float64         `json:"seconds"`
	Histogram map[int64]int64 `json:"histogram"`
	// CPU is the CPU time the server process used during the run, in seconds.
	CPU float64 `json:"-"`
}

// add merges r into t.
func (t *result) add(r result) {
	t.CPU += r.CPU
	t.Requests += r.Requests
	t.Failures += r.Failures
	t.Seconds += r.Seconds
	if t.Histogram == nil {
		t.Histogram = make(map[int64]int64)
	}
	for b, n := range r.Histogram {
		t.Histogram[b] += n
	}
}

func (t *result) rate() float64 { return float64(t.Requests) / t.Seconds }

// cpuPerRequest is the server's CPU time per answered request in µs: on a
// loaded machine a steadier figure than the rate, since other processes'
// work does not count in it.
func (t *result) cpuPerRequest() float64 { return t.CPU / float64(t.Requests) * 1e6 }

// processCPU is the user plus system CPU time process pid has used, from
// /proc (Linux; 0 elsewhere).
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count from after it.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var utime, stime float64
	_, _ = fmt.Sscan(f[11], &utime)
	_, _ = fmt.Sscan(f[12], &stime)
	return (utime + stime) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// quantile is the latency below which q of the requests answered, in ms (the
// upper edge of its 10 µs bucket).
func (t *result) quantile(q float64) float64 {
	keys := make([]int64, 0, len(t.Histogram))
	for b := range t.Histogram {
		keys = append(keys, b)
	}
	slices.Sort(keys)
	want := int64(math.Ceil(q * float64(t.Requests)))
	var seen int64
	for _, b := range keys {
		seen += t.Histogram[b]
		if seen >= want {
			return float64(b+1) / 100
		}
	}
	return math.NaN()
}

// side is one thing loaded in alternation: a load generator run, or the
// writer baseline.
type side func(ctx context.Context) (result, error)

func (o options) loadgenRun(server *proc, url string, extra ...string) side {
	return func(ctx context.Context) (result, error) {
		cpu0 := processCPU(server.cmd.Process.Pid)
		args := append([]string{"-url", url, "-c", fmt.Sprint(o.connections), "-d", o.duration.String()}, extra...)
		cmd := exec.CommandContext(ctx, o.loadgen, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return result{}, fmt.Errorf("loadgen %s: %w: %s", url, err, stderr.String())
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return result{}, fmt.Errorf("loadgen output %q: %w", b, err)
		}
		r.CPU = processCPU(server.cmd.Process.Pid) - cpu0
		if r.Failures > 0 {
			return r, fmt.Errorf("loadgen %s: %d of %d requests failed, first: %s", url, r.Failures, r.Failures+r.Requests, r.FirstErr)
		}
		return r, nil
	}
}

// alternate runs a and b rounds times each, swapping which goes first every
// round, and returns their merged results.
func alternate(ctx context.Context, rounds int, a, b side) (ra, rb result, err error) {
	for i := range rounds {
		first, second, into1, into2 := a, b, &ra, &rb
		if i%2 == 1 {
			first, second, into1, into2 = b, a, &rb, &ra
		}
		r, err := first(ctx)
		if err != nil {
			return ra, rb, err
		}
		into1.add(r)
		if r, err = second(ctx); err != nil {
			return ra, rb, err
		}
		into2.add(r)
	}
	return ra, rb, nil
}

func runDB(ctx context.Context, o options, db string, helloProc *proc, out io.Writer) error {
	dir, err := os.MkdirTemp("", "kowai-bench-http-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dbURL := "sqlite://" + filepath.Join(dir, "kowai.db")
	if db == "mysql" {
		u, drop, err := mysqlDatabase(ctx, o.mysqlDSN)
		if err != nil {
			return err
		}
		defer drop()
		dbURL = u
	}
	n, err := startKowai(ctx, o.kowai, dir, dbURL)
	if err != nil {
		return err
	}
	defer n.stop()
	token, userID, err := login(n.url)
	if err != nil {
		return err
	}
	auth := []string{"-H", "Authorization: Bearer " + token}
	hello := o.loadgenRun(helloProc, helloProc.url)
	newTurn := o.loadgenRun(&n.proc, n.url+"/api/v1/chat/message", append(auth, "-chat", "new")...)
	continueTurn := o.loadgenRun(&n.proc, n.url+"/api/v1/chat/message", append(auth, "-chat", "continue")...)
	all := []struct {
		key, name string
		side      side
	}{
		{"live", "GET /health/live", o.loadgenRun(&n.proc, n.url+"/health/live")},
		{"me", "GET /api/v1/auth/me", o.loadgenRun(&n.proc, n.url+"/api/v1/auth/me", auth...)},
		{"conversations", "GET /api/v1/chat/conversations", o.loadgenRun(&n.proc, n.url+"/api/v1/chat/conversations", auth...)},
		{"new", "POST /api/v1/chat/message (new conversation)", newTurn},
		{"continue", "POST /api/v1/chat/message (continuing)", continueTurn},
	}
	routes := all[:0]
	for _, r := range all {
		if o.routes[r.key] {
			routes = append(routes, r)
		}
	}
	fmt.Fprintf(out, "\n%s (load %s)\n", db, loadavg())
	fmt.Fprintf(out, "| route | req/s | bare Fiber req/s | x-vs-baseline | p50 ms (x) | p99 ms (x) | server CPU µs/req (x) |\n|---|---|---|---|---|---|---|\n")
	// Warm-up: connections, caches, the database's pages.
	for _, r := range routes {
		if r.key == "new" || r.key == "continue" {
			continue
		}
		if _, err := r.side(ctx); err != nil {
			return err
		}
	}
	if _, err := hello(ctx); err != nil {
		return err
	}
	for _, r := range routes {
		k, h, err := alternate(ctx, o.rounds, r.side, hello)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| %s | %.0f | %.0f | %.2f | %.2f (%.2fx) | %.2f (%.2fx) | %.0f (%.1fx) |\n", r.name, k.rate(), h.rate(), k.rate()/h.rate(),
			k.quantile(.5), k.quantile(.5)/h.quantile(.5), k.quantile(.99), k.quantile(.99)/h.quantile(.99),
			k.cpuPerRequest(), k.cpuPerRequest()/h.cpuPerRequest())
	}
	if !o.routes["continue"] {
		return nil
	}
	if o.routes["new"] {
		first, cont, err := alternate(ctx, o.rounds, newTurn, continueTurn)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "first turn vs continuing turn: %.0f vs %.0f turns/s = %.2f (server CPU %.0f vs %.0f µs/turn)\n",
			first.rate(), cont.rate(), first.rate()/cont.rate(), first.cpuPerRequest(), cont.cpuPerRequest())
	}
	writer, err := newWriterBaseline(ctx, dbURL, userID, o)
	if err != nil {
		return err
	}
	defer writer.close()
	cont, rows, err := alternate(ctx, o.rounds, continueTurn, writer.run)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "continuing turns vs group-commit writer rows/s ÷ 2: %.0f vs %.0f = %.2f\n", cont.rate(), rows.rate()/2, 2*cont.rate()/rows.rate())
	if info, err := os.Stat(n.logPath); err == nil {
		fmt.Fprintf(out, "kowai's log file: %d MB\n", info.Size()>>20)
	}
	return nil
}

// writerBaseline is the group-commit writer of kowai's own persistence
// package on the benchmark's database, in this process: o.connections writers
// each appending one message after the other to a conversation of its own.
type writerBaseline struct {
	db     *persistence.DB
	w      *persistence.Writer
	convs  []string
	seqs   []int64
	cancel context.CancelFunc
	done   chan error
	o      options
}

func newWriterBaseline(ctx context.Context, dbURL, userID string, o options) (*writerBaseline, error) {
	db, err := persistence.Open(ctx, dbURL, persistence.Options{})
	if err != nil {
		return nil, err
	}
	b := &writerBaseline{db: db, w: persistence.NewWriter(db, persistence.WriterOptions{}), o: o,
		seqs: make([]int64, o.connections), done: make(chan error, 1)}
	convs := persistence.NewConversationStore(db)
	for range o.connections {
		c, err := convs.Create(ctx, persistence.Conversation{OwnerID: userID, AgentID: "chat", Title: "writer baseline", CreatedAt: time.Now()})
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("writer baseline: %w", err)
		}
		b.convs = append(b.convs, c.ID)
	}
	wctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- b.w.Run(wctx) }()
	return b, nil
}

func (b *writerBaseline) close() {
	b.cancel()
	<-b.done
	_ = b.db.Close()
}

// run appends for o.duration and returns rows as requests.
func (b *writerBaseline) run(ctx context.Context) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.duration)
	defer cancel()
	var rows atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for i := range b.convs {
		wg.Go(func() {
			for ctx.Err() == nil {
				b.seqs[i]++
				err := b.w.AppendMessages(context.Background(), persistence.Message{ConversationID: b.convs[i],
					Seq: b.seqs[i], Role: "user", Content: "baseline message of typical length for a chat turn"})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				rows.Add(1)
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return result{}, fmt.Errorf("writer baseline: %w", err)
	}
	return result{Requests: rows.Load(), Seconds: time.Since(start).Seconds()}, nil
}
