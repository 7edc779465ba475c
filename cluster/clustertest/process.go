package clustertest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildBinary builds the main package pkg (an import path, or a path relative to the
// test's directory) into a temporary directory and returns the binary's path.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Process is a node (or any server) running as a child process.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	output bytes.Buffer
}

// StartProcess starts bin with args and env added to the test's environment. It is
// killed in t.Cleanup if still running; its output is logged when the test fails.
func StartProcess(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit status is read from ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", bin, p.cmd.Process.Pid, p.Output())
		}
	})
	return p
}

// Write collects the process's output.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.Write(b)
}

// Output returns what the process has written so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Kill sends SIGKILL (a crash, as `kill -9`) and waits for the process to end.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill() // fails only when the process has already exited
	<-p.done
}

// Terminate sends SIGTERM and returns the exit code, or -1 if the process has not
// exited within timeout (it is then left running for Kill or t.Cleanup).
func (p *Process) Terminate(timeout time.Duration) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only when the process has already exited
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
}
