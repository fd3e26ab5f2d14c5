package rabbit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Handshake probe timing: a new connection every HandshakeInterval, given
// HandshakeTimeout to finish the AMQP handshake. A broker out of file handles keeps
// its existing connections working and accepts TCP, but never answers a new
// handshake: only a fresh connection shows it, and a service that restarts then
// cannot reconnect.
const (
	HandshakeInterval = 10 * time.Second
	HandshakeTimeout  = 5 * time.Second
)

// ErrHandshakeUnchecked is the probe's answer before its first dial finished.
var ErrHandshakeUnchecked = errors.New("rabbitmq handshake not checked yet")

// HandshakeProbe dials a fresh connection periodically and closes it again; Check (a
// readiness check) reports the latest outcome without dialling, so /readyz never waits
// for the broker and never opens connections of its own.
type HandshakeProbe struct {
	url      string
	name     string
	log      *slog.Logger
	interval time.Duration
	timeout  time.Duration

	mu   sync.Mutex
	last error // ErrHandshakeUnchecked until the first probe ends
}

// NewHandshakeProbe probes url every interval, each dial bounded by timeout (use
// HandshakeInterval and HandshakeTimeout); the connections it opens are named name.
func NewHandshakeProbe(url, name string, log *slog.Logger, interval, timeout time.Duration) *HandshakeProbe {
	return &HandshakeProbe{url: url, name: name, log: log.With("amqp_conn", name), interval: interval, timeout: timeout, last: ErrHandshakeUnchecked}
}

// Run probes at once and then every interval until ctx ends. Each probe is bounded by
// the timeout, so Run returns at most that long after ctx ends.
func (p *HandshakeProbe) Run(ctx context.Context) error {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		p.record(p.probe())
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Check is the readiness check: the latest probe's outcome.
func (p *HandshakeProbe) Check(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// probe opens a connection and closes it, both within the timeout.
func (p *HandshakeProbe) probe() error {
	conn, err := amqp.DialConfig(p.url, amqp.Config{
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": p.name},
		// DefaultDial's deadline covers TCP connect, TLS and the whole AMQP handshake.
		Dial: amqp.DefaultDial(p.timeout),
	})
	if err != nil {
		return fmt.Errorf("new AMQP connection not completed within %s (the broker may be out of file handles; existing connections can still work): %w", p.timeout, err)
	}
	// Close waits for close-ok; a broker that wedges right after the handshake must not
	// hold the probe.
	if err := conn.CloseDeadline(time.Now().Add(p.timeout)); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close probe connection: %w", err)
	}
	return nil
}

// record stores the outcome and logs each change, so the log shows when new
// connections stopped and started working again.
func (p *HandshakeProbe) record(err error) {
	p.mu.Lock()
	prev := p.last
	p.last = err
	p.mu.Unlock()
	switch {
	case err != nil && (prev == nil || errors.Is(prev, ErrHandshakeUnchecked)):
		p.log.Error("rabbitmq does not complete new AMQP connections: not ready", "err", err)
	case err == nil && prev != nil && !errors.Is(prev, ErrHandshakeUnchecked):
		p.log.Info("rabbitmq completes new AMQP connections again")
	}
}
