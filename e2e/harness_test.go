//go:build integration

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/proctest"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mtm-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := proctest.Build(dir,
		"github.com/multitenant/mtm/services/command",
		"github.com/multitenant/mtm/services/consumer",
		"github.com/multitenant/mtm/services/query",
		"github.com/multitenant/mtm/services/console"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Proc is one running service binary.
type Proc = proctest.Proc

func freeAddr(t *testing.T) string { return proctest.FreeAddr(t) }

// Env is the environment for a system under test: its own database, the shared broker.
func Env(t *testing.T) map[string]string {
	t.Helper()
	db := pgtest.New(t)
	amqptest.CleanupEventStoreTenants(t, db.Pool) // before any service starts: runs after they stopped
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
	return proctest.Start(t, filepath.Join(binDir, name), "", env, args...)
}

// Run runs bin/name to completion and returns its exit code and output.
func Run(t *testing.T, name string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	return proctest.Run(t, filepath.Join(binDir, name), env, args...)
}

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
