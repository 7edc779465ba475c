package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// headers collects repeated -H "Name: value" flags.
type headers [][2]string

func (h *headers) String() string { return fmt.Sprint(*h) }

func (h *headers) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", s)
	}
	*h = append(*h, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	return nil
}

// Chat modes.
const (
	chatOff      = ""
	chatNew      = "new"
	chatContinue = "continue"
)

// config is one run's settings.
type config struct {
	url         string
	method      string
	body        string
	headers     headers
	connections int
	duration    time.Duration
	timeout     time.Duration
	chat        string
	status      int
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.url, "url", "", "URL to load (required)")
	fs.StringVar(&c.method, "method", "GET", "HTTP method")
	fs.StringVar(&c.body, "body", "", "request body")
	fs.Var(&c.headers, "H", `request header "Name: value" (repeatable)`)
	fs.IntVar(&c.connections, "c", 64, "concurrent keep-alive connections")
	fs.DurationVar(&c.duration, "d", 3*time.Second, "how long to load")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.StringVar(&c.chat, "chat", chatOff, "chat turns: new (a new conversation per request) or continue (one conversation per connection)")
	fs.IntVar(&c.status, "status", 200, "the status every request must answer")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.url == "":
		return c, errors.New("-url is required")
	case c.connections < 1:
		return c, errors.New("-c must be at least 1")
	case c.duration <= 0:
		return c, errors.New("-d must be positive")
	case c.chat != chatOff && c.chat != chatNew && c.chat != chatContinue:
		return c, fmt.Errorf("-chat %q: want new or continue", c.chat)
	}
	if _, err := url.Parse(c.url); err != nil {
		return c, fmt.Errorf("-url: %w", err)
	}
	if c.chat != chatOff {
		c.method = fasthttp.MethodPost
		c.headers = append(c.headers, [2]string{"Content-Type", "application/json"})
	}
	return c, nil
}

// bucketWidth is the histogram's resolution; maxBucket holds everything slower
// than maxBucket*bucketWidth.
const (
	bucketWidth = 10 * time.Microsecond
	maxBucket   = 1_000_000 // 10 s
)

// Result is what one run prints: the requests answered with the expected
// status, the others, the elapsed time, and the latencies of the answered
// ones as a sparse histogram (bucket index -> count, bucket i holding
// latencies in [i, i+1) * 10 µs).
type Result struct {
	Requests  int64           `json:"requests"`
	Failures  int64           `json:"failures"`
	FirstErr  string          `json:"first_error,omitempty"`
	Seconds   float64         `json:"seconds"`
	Histogram map[int64]int64 `json:"histogram"`
}

func bucket(d time.Duration) int64 {
	return min(int64(d/bucketWidth), maxBucket)
}

// worker is one connection's client state.
type worker struct {
	cfg  config
	hist map[int64]int64
	n    int64
	conv string
	// id and seq make each chat message unique: the worker's number (random, so
	// that runs differ too) and its count of requests.
	id, seq int64
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	res, err := load(ctx, cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(res)
}

// load runs cfg and returns its result.
func load(ctx context.Context, cfg config) (*Result, error) {
	u, err := url.Parse(cfg.url)
	if err != nil {
		return nil, err
	}
	client := &fasthttp.HostClient{Addr: u.Host, MaxConns: cfg.connections, ReadTimeout: cfg.timeout,
		WriteTimeout: cfg.timeout, MaxIdleConnDuration: time.Minute, NoDefaultUserAgentHeader: false,
		Name: "kowai-loadgen"}
	defer client.CloseIdleConnections()
	workers := make([]*worker, cfg.connections)
	for i := range workers {
		workers[i] = &worker{cfg: cfg, hist: make(map[int64]int64), id: rand.Int64()}
	}
	if cfg.chat == chatContinue {
		// Each connection's conversation exists before the clock starts.
		var wg sync.WaitGroup
		errs := make([]error, len(workers))
		for i, w := range workers {
			wg.Go(func() { _, errs[i] = w.do(client) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("start conversations: %w", err)
		}
	}
	var failures atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				ok, err := w.do(client)
				if ok {
					w.hist[bucket(time.Since(t0))]++
					w.n++
					continue
				}
				failures.Add(1)
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	res := &Result{Seconds: time.Since(start).Seconds(), Histogram: make(map[int64]int64), Failures: failures.Load()}
	if e, ok := firstErr.Load().(string); ok {
		res.FirstErr = e
	}
	for _, w := range workers {
		res.Requests += w.n
		for b, n := range w.hist {
			res.Histogram[b] += n
		}
	}
	return res, nil
}

// chatReply is the part of a turn's answer the chat modes read.
type chatReply struct {
	ConversationID string `json:"conversation_id"`
}

// do sends one request and reports whether it answered the expected status.
func (w *worker) do(client *fasthttp.HostClient) (bool, error) {
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI(w.cfg.url)
	req.Header.SetMethod(w.cfg.method)
	for _, h := range w.cfg.headers {
		req.Header.Set(h[0], h[1])
	}
	// Every message differs, as users' messages do, so the model cache never answers.
	w.seq++
	switch {
	case w.cfg.chat == chatNew || w.cfg.chat == chatContinue && w.conv == "":
		req.SetBodyString(fmt.Sprintf(`{"content":"what is the weather like today? (%d/%d)"}`, w.id, w.seq))
	case w.cfg.chat == chatContinue:
		req.SetBodyString(fmt.Sprintf(`{"conversation_id":%q,"content":"and what about tomorrow? (%d/%d)"}`, w.conv, w.id, w.seq))
	case w.cfg.body != "":
		req.SetBodyString(w.cfg.body)
	}
	if err := client.DoTimeout(req, res, w.cfg.timeout); err != nil {
		return false, err
	}
	if res.StatusCode() != w.cfg.status {
		return false, fmt.Errorf("status %d: %.200s", res.StatusCode(), res.Body())
	}
	if w.cfg.chat == chatContinue && w.conv == "" {
		var r chatReply
		if err := json.Unmarshal(res.Body(), &r); err != nil || r.ConversationID == "" {
			return false, fmt.Errorf("no conversation_id in %.200s", res.Body())
		}
		w.conv = r.ConversationID
	}
	return true, nil
}
