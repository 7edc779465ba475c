package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// kowaiBinary builds cmd/kowai once per test binary and returns its path.
func kowaiBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kowai-deploy-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kowai")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/kowai").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build kowai: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// process is a child process whose stderr is kept for failure messages.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan error
}

// start runs name with args and env added to a minimal environment; the
// process is killed when the test ends.
func start(t *testing.T, dir string, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	p.cmd.Dir = dir
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.cmd.Stderr
	// Its own process group, so that ending it ends its children too (an
	// nginx master's workers hold the output pipe open).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s %v output:\n%s", filepath.Base(name), args, tail(p.log(), 40))
		}
	})
	return p
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// exited returns an errStop when the process has ended.
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return testenv.Stop{Err: fmt.Errorf("process exited (%v):\n%s", err, tail(p.log(), 20))}
	default:
		return nil
	}
}

// kill ends the process at once (SIGKILL), like a machine that dies.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200 or p exits.
func waitHTTP(t *testing.T, p *process, url string) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := p.exited(); err != nil {
			return err
		}
		res, err := http.Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return errors.New(url + ": " + res.Status)
		}
		return nil
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// call sends a JSON request to base+path with an optional bearer token and
// decodes a JSON answer into out (when not nil); it returns the status.
func call(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return res.StatusCode
}

// signUp registers a user through base (http://host:port) and returns an
// access token.
func signUp(t *testing.T, base, email string) string {
	t.Helper()
	creds := map[string]string{"email": email, "password": "s3cret-passw0rd"}
	if code := call(t, http.MethodPost, base+"/api/v1/auth/register", "", map[string]string{"email": email, "password": "s3cret-passw0rd", "name": "Ops"}, nil); code != http.StatusCreated {
		t.Fatalf("register %s: %d", email, code)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code := call(t, http.MethodPost, base+"/api/v1/auth/login", "", creds, &tok); code != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("login %s: %d", email, code)
	}
	return tok.AccessToken
}

// turnResult is the JSON answer of POST /api/v1/chat/message.
type turnResult struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Response       string `json:"response"`
}
