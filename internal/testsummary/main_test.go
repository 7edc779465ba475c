package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A stream as `go test -json` writes it: a passing test, a skipped one with
// its reason, a failing subtest, and a package without tests.
const stream = `{"Action":"start","Package":"k/a"}
{"Action":"run","Package":"k/a","Test":"TestPass"}
{"Action":"output","Package":"k/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"k/a","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"k/a","Test":"TestPass","Elapsed":0}
{"Action":"run","Package":"k/a","Test":"TestEtcd"}
{"Action":"output","Package":"k/a","Test":"TestEtcd","Output":"=== RUN   TestEtcd\n"}
{"Action":"output","Package":"k/a","Test":"TestEtcd","Output":"    etcd_test.go:12: SKIPPING: etcd is not installed\n"}
{"Action":"output","Package":"k/a","Test":"TestEtcd","Output":"--- SKIP: TestEtcd (0.00s)\n"}
{"Action":"skip","Package":"k/a","Test":"TestEtcd","Elapsed":0}
{"Action":"output","Package":"k/a","Output":"PASS\n"}
{"Action":"output","Package":"k/a","Output":"ok  \tk/a\t0.01s\n"}
{"Action":"pass","Package":"k/a","Elapsed":0.01}
{"Action":"run","Package":"k/b","Test":"TestTable"}
{"Action":"output","Package":"k/b","Test":"TestTable","Output":"=== RUN   TestTable\n"}
{"Action":"run","Package":"k/b","Test":"TestTable/case"}
{"Action":"output","Package":"k/b","Test":"TestTable/case","Output":"=== RUN   TestTable/case\n"}
{"Action":"output","Package":"k/b","Test":"TestTable/case","Output":"    b_test.go:7: got 1, want 2\n"}
{"Action":"output","Package":"k/b","Test":"TestTable/case","Output":"    --- FAIL: TestTable/case (0.00s)\n"}
{"Action":"fail","Package":"k/b","Test":"TestTable/case","Elapsed":0}
{"Action":"output","Package":"k/b","Test":"TestTable","Output":"--- FAIL: TestTable (0.00s)\n"}
{"Action":"fail","Package":"k/b","Test":"TestTable","Elapsed":0}
{"Action":"output","Package":"k/b","Output":"FAIL\n"}
{"Action":"output","Package":"k/b","Output":"FAIL\tk/b\t0.01s\n"}
{"Action":"fail","Package":"k/b","Elapsed":0.01}
{"Action":"output","Package":"k/c","Output":"?   \tk/c\t[no test files]\n"}
{"Action":"skip","Package":"k/c","Elapsed":0}
not json: a message of go itself
`

func TestSummary(t *testing.T) {
	var out bytes.Buffer
	s := &summary{out: &out, buffered: map[string][]string{}}
	if err := s.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	s.report()
	want := "ok  \tk/a\t0.01s\n" +
		"=== RUN   TestTable/case\n    b_test.go:7: got 1, want 2\n    --- FAIL: TestTable/case (0.00s)\n" +
		"=== RUN   TestTable\n--- FAIL: TestTable (0.00s)\n" +
		"FAIL\nFAIL\tk/b\t0.01s\n" +
		"?   \tk/c\t[no test files]\n" +
		"not json: a message of go itself\n" +
		"\ntests: 1 passed, 2 failed, 1 skipped\n" +
		"skipped:\n  k/a TestEtcd: etcd_test.go:12: SKIPPING: etcd is not installed\n" +
		"failed:\n  k/b TestTable/case\n  k/b TestTable\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

// A package that dies mid-test (a timeout) prints the output of the tests
// that never ended.
func TestSummaryUnfinishedTests(t *testing.T) {
	var out bytes.Buffer
	s := &summary{out: &out, buffered: map[string][]string{}}
	err := s.read(strings.NewReader(`{"Action":"output","Package":"k/d","Test":"TestHang","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"k/d","Output":"FAIL\tk/d\t1.0s\n"}
{"Action":"fail","Package":"k/d","Elapsed":1}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "panic: test timed out") {
		t.Errorf("output lost: %q", out.String())
	}
}

// helperEnv makes the test binary act as a go test command: it prints the
// stream and exits with the status in the variable.
const helperEnv = "TESTSUMMARY_HELPER_EXIT"

// passing is the part of stream where nothing fails.
var passing = stream[:strings.Index(stream, `{"Action":"run","Package":"k/b"`)]

func TestMain(m *testing.M) {
	if code := os.Getenv(helperEnv); code != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(code, "-passing"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(100)
		}
		if strings.HasSuffix(code, "-passing") {
			fmt.Print(passing)
		} else {
			fmt.Print(stream)
		}
		os.Exit(n)
	}
	os.Exit(m.Run())
}

func TestRunKeepsTheExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codes []string
		want  int
	}{
		{"first failure wins", []string{"3", "0"}, 3},
		{"a later failure", []string{"0", "4"}, 4},
		{"failed tests fail a run whose commands exit 0", []string{"0"}, 1},
		{"all passed", []string{"0-passing", "0-passing"}, 0},
	} {
		var args []string
		for i, c := range tc.codes {
			if i > 0 {
				args = append(args, then)
			}
			args = append(args, "env", helperEnv+"="+c, os.Args[0])
		}
		var out, errOut bytes.Buffer
		if got := run(args, &out, &errOut); got != tc.want {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, got, tc.want, errOut.String())
		}
		n, failed := len(tc.codes), 2*len(tc.codes)
		if tc.want == 0 {
			failed = 0
		}
		if !strings.Contains(out.String(), fmt.Sprintf("tests: %d passed, %d failed, %d skipped", n, failed, n)) {
			t.Errorf("%s: summary does not count every command:\n%s", tc.name, out.String())
		}
	}
	if got := run(nil, &bytes.Buffer{}, &bytes.Buffer{}); got != 2 {
		t.Errorf("no command: exit %d, want 2", got)
	}
	if got := run([]string{"/nonexistent/go"}, &bytes.Buffer{}, &bytes.Buffer{}); got != 1 {
		t.Errorf("a command that cannot start: exit %d, want 1", got)
	}
}

// make test runs both suites through testsummary, and CI checks that the
// module is tidy after the tests, so neither can be dropped unnoticed.
func TestMakeAndCIUseTheChecks(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	_, recipe, _ := strings.Cut(string(makefile), "\ntest: ")
	prereqs, recipe, _ := strings.Cut(recipe, "\n")
	recipe, _, _ = strings.Cut(recipe, "\n\n")
	// apilint-deps installs the linters TestAPILint needs (it fails in CI without them).
	for _, want := range []string{"fmt-check", "vet", "apilint-deps"} {
		if !slices.Contains(strings.Fields(prereqs), want) {
			t.Errorf("make test does not depend on %s: test: %s", want, prereqs)
		}
	}
	for _, want := range []string{"$(GO) run ./internal/testsummary", "$(GO) test -json -race", "--then $(GO) test -json -count=1"} {
		if !strings.Contains(recipe, want) {
			t.Errorf("make test's recipe lacks %q:\n%s", want, recipe)
		}
	}
	ci, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	test, tidy := strings.Index(string(ci), "\nmake test\n"), strings.Index(string(ci), "\nmake tidy-check\n")
	if test < 0 || tidy < test {
		t.Errorf(".ci/run must run make tidy-check after make test (at %d and %d)", test, tidy)
	}
	if !strings.Contains(string(makefile), "tidy-check:\n\t@if ! $(GO) mod tidy -diff;") {
		t.Error("make tidy-check does not run go mod tidy -diff")
	}
}
