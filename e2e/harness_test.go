//go:build integration

// Package e2e runs the three real binaries against real Postgres and RabbitMQ.
package e2e

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/pgtest"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mtm-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"github.com/multitenant/mtm/services/command",
		"github.com/multitenant/mtm/services/consumer",
		"github.com/multitenant/mtm/services/query")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is one running service binary.
type Proc struct {
	Name string
	Addr string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Env is the environment for a system under test: its own database, the shared broker.
func Env(t *testing.T) map[string]string {
	t.Helper()
	db := pgtest.New(t)
	// Registered before the services start, so it runs after they are gone: delete the
	// queues of every tenant the test created (a running consumer would re-declare them).
	t.Cleanup(func() {
		rows, err := db.Pool.Query(context.Background(), `SELECT DISTINCT stream_id::text FROM event_store`)
		if err != nil {
			return
		}
		ids, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range ids {
			amqptest.DeleteTenant(t, id)
		}
	})
	return map[string]string{
		"DATABASE_URL":     db.URL,
		"RABBITMQ_URL":     amqptest.URL(t),
		"SHUTDOWN_TIMEOUT": "10s",
		"LOG_LEVEL":        "info",
	}
}

// Start runs bin/name with env plus a fresh HTTP_ADDR and stops it (SIGKILL) at test end if still running.
func Start(t *testing.T, name string, env map[string]string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Addr: freeAddr(t), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Env = append(os.Environ(), "HTTP_ADDR="+p.Addr)
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.out.String())
		}
	})
	return p
}

// Run runs bin/name to completion and returns its exit code and output.
func Run(t *testing.T, name string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	require.NoError(t, err)
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

// WaitStatus polls path until it answers want or the timeout passes.
func (p *Proc) WaitStatus(t *testing.T, path string, want int, timeout time.Duration) {
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
func (p *Proc) Terminate(t *testing.T, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM\n%s", p.Name, within, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Kill())
	<-p.done
}

// Output is everything the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// proxy is a TCP forwarder whose upstream can be cut and restored, to simulate a
// database outage for one service without stopping the shared server.
type proxy struct {
	t        *testing.T
	upstream string
	ln       net.Listener
	addr     string
	mu       sync.Mutex
	conns    []net.Conn
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	p := &proxy{t: t, upstream: upstream, addr: freeAddr(t)}
	p.Up()
	t.Cleanup(p.Down)
	return p
}

// Up starts accepting and forwarding.
func (p *proxy) Up() {
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
}

// Down closes the listener and every forwarded connection: the upstream looks dead.
func (p *proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// replaceHost swaps host:port in a URL string.
func replaceHost(u, oldHost, newHost string) string { return strings.Replace(u, oldHost, newHost, 1) }
