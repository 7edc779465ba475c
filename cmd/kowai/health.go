package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func healthCmd(ctx context.Context, args []string, std stdio, getenv func(string) string) error {
	fs := flagSet("health", "health [--url URL]  (exit 0 when the node's /health/live answers 200)", std)
	target := fs.String("url", "", "the liveness URL (default http://HOST:PORT/health/live from KOWAI_HTTP_ADDR, 127.0.0.1 for a wildcard host)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	cfg, _, err := withConfig(fs, args, std, getenv, "KOWAI_HTTP_ADDR")
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q; want health [--url URL]", fs.Arg(0))
	}
	if *timeout <= 0 {
		return usagef("--timeout %s: want a positive duration such as 3s", *timeout)
	}
	u := *target
	if u == "" {
		u = liveURL(cfg.HTTPAddr)
	} else if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return usagef("--url %q: want an absolute http or https URL such as http://127.0.0.1:8080/health/live", u)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return usagef("--url %q: %v", u, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	defer res.Body.Close()
	// Draining the body lets the connection close cleanly; its content does not matter.
	if _, err := io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16)); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, res.Status)
	}
	_, err = fmt.Fprintf(std.out, "%s: ok\n", u)
	return err
}

// liveURL is the liveness URL of a node listening on addr: a wildcard host
// (":8080", "0.0.0.0:8080", "[::]:8080") is reached over loopback.
func liveURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "127.0.0.1", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/health/live"
}

// fileExists returns nil when path names an existing file.
func fileExists(path string) error {
	_, err := os.Stat(path)
	return err
}
