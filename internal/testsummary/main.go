// Command testsummary runs `go test -json` commands and prints what a plain
// `go test` prints (one line per package, the output of failed tests), then
// a summary: how many tests passed, failed and were skipped, and every
// skipped test with its reason, so a suite that skips because a service is
// missing cannot pass unnoticed. It exits with the first non-zero status of
// the commands it ran, or 0.
//
// Usage (make test):
//
//	go run ./internal/testsummary go test -json -race ./... --then go test -json ./cluster/clustertest
//
// Every command runs, even after one fails, so the summary covers them all.
// Lines that are not JSON events (a command's own messages) pass through.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// then separates the commands on the command line.
const then = "--then"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs each command of args (separated by --then) and returns the exit
// status: the first non-zero status of a command, 1 when one could not start,
// 2 for bad usage, else 0.
func run(args []string, stdout, stderr io.Writer) int {
	cmds := split(args)
	if len(cmds) == 0 {
		fmt.Fprintln(stderr, "usage: testsummary COMMAND [ARGS...] [--then COMMAND [ARGS...]]...")
		return 2
	}
	s := &summary{out: stdout, buffered: map[string][]string{}}
	status := 0
	for _, argv := range cmds {
		code, err := runOne(argv, s, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "testsummary: %s: %v\n", argv[0], err)
			code = 1
		}
		if status == 0 {
			status = code
		}
	}
	s.report()
	if status == 0 && s.failed > 0 {
		// A failed test always fails the run, even if its command said otherwise.
		status = 1
	}
	return status
}

// split cuts args at each --then, dropping empty commands.
func split(args []string) [][]string {
	var out [][]string
	for len(args) > 0 {
		i := slices.Index(args, then)
		if i < 0 {
			i = len(args)
		}
		if i > 0 {
			out = append(out, args[:i])
		}
		args = args[min(i+1, len(args)):]
	}
	return out
}

// runOne runs argv with stdout read by s and stderr passed through, and
// returns its exit status.
func runOne(argv []string, s *summary, stderr io.Writer) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return 1, fmt.Errorf("pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start: %w", err)
	}
	readErr := s.read(pipe)
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), nil
	case err != nil:
		return 1, fmt.Errorf("wait: %w", err)
	case readErr != nil:
		return 1, fmt.Errorf("read output: %w", readErr)
	}
	return 0, nil
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

// result is a test that failed or was skipped.
type result struct {
	pkg, test, reason string
}

// summary turns events into go test's usual output and counts the results.
type summary struct {
	out                     io.Writer
	passed, failed, skipped int
	// buffered holds each running test's output until it ends: printed
	// if it fails, the reason if it skips, dropped if it passes.
	buffered map[string][]string
	skips    []result
	fails    []result
}

// read consumes a stream of events.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(s.out, "%s\n", line)
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	if e.Action == "build-output" {
		fmt.Fprint(s.out, e.Output)
		return
	}
	if e.Test == "" {
		switch e.Action {
		case "output":
			// Package lines: "ok  pkg 1.2s", "FAIL pkg", "?  pkg [no
			// test files]", and what a test binary prints outside any test.
			if e.Output != "PASS\n" {
				fmt.Fprint(s.out, e.Output)
			}
		case "fail":
			// A package that dies (a timeout, a crash) leaves tests that
			// never ended: their output says why.
			keys := slices.Sorted(maps.Keys(s.buffered))
			for _, key := range keys {
				if strings.HasPrefix(key, e.Package+" ") {
					fmt.Fprint(s.out, strings.Join(s.buffered[key], ""))
					delete(s.buffered, key)
				}
			}
		}
		return
	}
	key := e.Package + " " + e.Test
	switch e.Action {
	case "output":
		s.buffered[key] = append(s.buffered[key], e.Output)
	case "pass":
		s.passed++
		delete(s.buffered, key)
	case "fail":
		s.failed++
		fmt.Fprint(s.out, strings.Join(s.buffered[key], ""))
		s.fails = append(s.fails, result{pkg: e.Package, test: e.Test})
		delete(s.buffered, key)
	case "skip":
		s.skipped++
		s.skips = append(s.skips, result{pkg: e.Package, test: e.Test, reason: reason(s.buffered[key])})
		delete(s.buffered, key)
	}
}

// reason is what a skipped test logged, on one line, without the runner's
// own === and --- lines.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		parts = append(parts, l)
	}
	r := strings.Join(parts, " ")
	if r == "" {
		return "(no reason given)"
	}
	if len(r) > 300 {
		r = r[:300] + "..."
	}
	return r
}

// report prints the totals and the skipped and failed tests.
func (s *summary) report() {
	fmt.Fprintf(s.out, "\ntests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	if len(s.skips) > 0 {
		fmt.Fprintln(s.out, "skipped:")
		for _, r := range s.skips {
			fmt.Fprintf(s.out, "  %s %s: %s\n", r.pkg, r.test, r.reason)
		}
	}
	if len(s.fails) > 0 {
		fmt.Fprintln(s.out, "failed:")
		for _, r := range s.fails {
			fmt.Fprintf(s.out, "  %s %s\n", r.pkg, r.test)
		}
	}
}
