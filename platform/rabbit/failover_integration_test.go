//go:build integration

package rabbit_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// node is a TCP forwarder to the real broker standing in for one cluster node: Cut
// drops its connections and refuses new ones (the node died), Restore brings it back.
type node struct {
	t        *testing.T
	addr     string
	upstream string
	mu       sync.Mutex
	ln       net.Listener
	conns    []net.Conn
}

func newNode(t *testing.T, upstream string) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	n := &node{t: t, addr: ln.Addr().String(), upstream: upstream}
	n.serve(ln)
	t.Cleanup(n.Cut)
	return n
}

func (n *node) serve(ln net.Listener) {
	n.mu.Lock()
	n.ln = ln
	n.mu.Unlock()
	go func() { // ends when Cut closes the listener
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", n.upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			n.mu.Lock()
			n.conns = append(n.conns, c, u)
			n.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
}

func (n *node) Cut() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ln != nil {
		_ = n.ln.Close()
		n.ln = nil
	}
	for _, c := range n.conns {
		_ = c.Close()
	}
	n.conns = nil
}

func (n *node) Restore() {
	ln, err := net.Listen("tcp", n.addr)
	require.NoError(n.t, err)
	n.serve(ln)
}

// via returns brokerURL with its host replaced by addr.
func via(t *testing.T, brokerURL, addr string) string {
	t.Helper()
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	u.Host = addr
	return u.String()
}

// deadAddr is a loopback port nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// A Conn over three nodes skips a dead first node, and when the node it is connected
// to dies it fails over to the next one, around the list.
func TestConnFailsOverAlongTheNodeList(t *testing.T) {
	t.Parallel()
	broker := amqptest.URL(t)
	upstream, err := url.Parse(broker)
	require.NoError(t, err)
	dead := deadAddr(t)
	a, b := newNode(t, upstream.Host), newNode(t, upstream.Host)
	urls := []string{via(t, broker, dead), via(t, broker, a.addr), via(t, broker, b.addr)}

	conn := rabbit.NewConn(strings.Join(urls, ","), "rabbit-failover-test", quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	connectedTo := func(n string, within time.Duration) {
		t.Helper()
		require.Eventually(t, func() bool { return conn.Node() == rabbit.NodeLabel(n) }, within, 10*time.Millisecond,
			"connected to %s, want %s", conn.Node(), rabbit.NodeLabel(n))
		ch, err := conn.Channel()
		require.NoError(t, err)
		require.NoError(t, ch.Close())
	}
	start := time.Now()
	connectedTo(urls[1], 5*time.Second)
	require.Less(t, time.Since(start), time.Second, "the dead first node costs one refused dial, no backoff")
	require.NotContains(t, conn.Node(), "guest", "the node label carries no credentials")

	a.Cut()
	connectedTo(urls[2], 5*time.Second)

	// Back around the list: the dead node first, then a (restored).
	a.Restore()
	b.Cut()
	connectedTo(urls[1], 5*time.Second)
	require.NoError(t, conn.Ping(ctx))
}

// The handshake probe is satisfied when any node completes a handshake, and fails
// naming each node when none does.
func TestHandshakeProbeAcrossNodes(t *testing.T) {
	t.Parallel()
	broker := amqptest.URL(t)
	dead := via(t, broker, deadAddr(t))
	p := rabbit.NewHandshakeProbe(dead+","+broker, "probe-failover-test", quiet(), 50*time.Millisecond, time.Second)
	runProbe(t, p)
	require.Eventually(t, func() bool { return p.Check(context.Background()) == nil }, 5*time.Second, 10*time.Millisecond)

	dead2 := via(t, broker, deadAddr(t))
	p2 := rabbit.NewHandshakeProbe(dead+","+dead2, "probe-failover-test", quiet(), 50*time.Millisecond, time.Second)
	runProbe(t, p2)
	require.Eventually(t, func() bool {
		err := p2.Check(context.Background())
		return err != nil && strings.Contains(err.Error(), rabbit.NodeLabel(dead)) && strings.Contains(err.Error(), rabbit.NodeLabel(dead2))
	}, 5*time.Second, 10*time.Millisecond)
	require.NotContains(t, p2.Check(context.Background()).Error(), "guest:guest")
}
