// Package proctest runs the project's real binaries in tests: build once, start with an
// environment on a free port, probe HTTP, stop with a signal, and show the output when
// the test failed.
package proctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles pkgs (import paths or directories) into dir, for a TestMain.
func Build(dir string, pkgs ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %v: %w", pkgs, err)
	}
	return nil
}

// handedOut are the ports FreeAddr returned in this process: the kernel may offer a
// port again as soon as its probe listener closed, before the process it was meant for
// has bound it, and two services of one test then race for it.
var (
	portsMu   sync.Mutex
	handedOut = map[string]bool{}
)

// FreeAddr returns a loopback address whose port nobody listens on right now and that
// it has not returned before in this process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("proctest: free port: %v", err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr
		}
	}
	t.Fatalf("proctest: no port not handed out before in 100 tries")
	return ""
}

// output collects a process's output safely while it runs.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *output) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *output) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is one running binary.
type Proc struct {
	Name string
	Addr string
	cmd  *exec.Cmd
	out  *output
	done chan struct{}
	err  error
}

// command builds bin with the test process's environment plus env.
func command(ctx context.Context, bin string, env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// Start runs bin with env and HTTP_ADDR=addr (a free port when addr is ""). A process
// still running at test end is killed; its output is logged when the test failed.
func Start(t testing.TB, bin, addr string, env map[string]string, args ...string) *Proc {
	t.Helper()
	if addr == "" {
		addr = FreeAddr(t)
	}
	p := &Proc{Name: filepath.Base(bin), Addr: addr, out: &output{}, done: make(chan struct{})}
	p.cmd = command(context.Background(), bin, env, args...)
	p.cmd.Env = append(p.cmd.Env, "HTTP_ADDR="+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("proctest: start %s: %v", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", p.Name, p.out.String())
		}
	})
	return p
}

// Run runs bin to completion (two minutes at most) and returns its exit code and output.
func Run(t testing.TB, bin string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := command(ctx, bin, env, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("proctest: run %s: %v", bin, err)
	}
	return 0, string(out)
}

// URL is the base URL of the process's HTTP server.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Status GETs path and returns the status code (0 when nothing answers).
func (p *Proc) Status(path string) int {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(p.URL() + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// WaitStatus polls path until it answers want; it fails at once if the process exits.
func (p *Proc) WaitStatus(t testing.TB, path string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := 0
	for time.Now().Before(deadline) {
		if last = p.Status(path); last == want {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited while waiting for %s=%d: %v\n%s", p.Name, path, want, p.err, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s: %s answered %d, want %d within %s\n%s", p.Name, path, last, want, timeout, p.out.String())
}

// Terminate sends SIGTERM and returns the exit code and how long the exit took.
func (p *Proc) Terminate(t testing.TB, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("proctest: SIGTERM %s: %v", p.Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM\n%s", p.Name, within, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("proctest: SIGKILL %s: %v", p.Name, err)
	}
	<-p.done
}

// Output is everything the process printed so far.
func (p *Proc) Output() string { return p.out.String() }
