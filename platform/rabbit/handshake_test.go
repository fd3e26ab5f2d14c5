package rabbit_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/rabbit"
)

// silentBroker accepts TCP connections and never answers: what a broker out of file
// handles looks like to a new client. Connections are held until the test ends.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() { // owned by the test: ends when the listener closes in Cleanup
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "amqp://guest:guest@" + ln.Addr().String() + "/"
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func runProbe(t *testing.T, p *rabbit.HandshakeProbe) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func TestHandshakeProbeFailsOnBrokerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	p := rabbit.NewHandshakeProbe(silentBroker(t), "probe-test", quiet(), 50*time.Millisecond, 200*time.Millisecond)
	require.ErrorIs(t, p.Check(context.Background()), rabbit.ErrHandshakeUnchecked, "not ready before the first probe")
	start := time.Now()
	runProbe(t, p)
	require.Eventually(t, func() bool {
		err := p.Check(context.Background())
		return err != nil && !errors.Is(err, rabbit.ErrHandshakeUnchecked)
	}, 5*time.Second, 10*time.Millisecond, "the TCP-only broker is reported")
	require.Less(t, time.Since(start), 2*time.Second, "the dial is bounded by the timeout")
	require.ErrorContains(t, p.Check(context.Background()), "not completed within 200ms")
}

func TestHandshakeProbeFailsOnClosedPort(t *testing.T) {
	t.Parallel()
	p := rabbit.NewHandshakeProbe("amqp://guest:guest@127.0.0.1:1/", "probe-test", quiet(), 50*time.Millisecond, 200*time.Millisecond)
	runProbe(t, p)
	require.Eventually(t, func() bool {
		err := p.Check(context.Background())
		return err != nil && !errors.Is(err, rabbit.ErrHandshakeUnchecked)
	}, 5*time.Second, 10*time.Millisecond)
}
