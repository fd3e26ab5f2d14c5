package rabbit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
// for the broker and never opens connections of its own. With several nodes a probe
// succeeds when any node completes the handshake (a restarting service would fail over
// to it); it starts with the node that answered last, so a healthy cluster costs one
// dial a probe.
type HandshakeProbe struct {
	urls     []string
	name     string
	log      *slog.Logger
	interval time.Duration
	timeout  time.Duration

	mu   sync.Mutex
	last error // ErrHandshakeUnchecked until the first probe ends
	// good is the node that completed the last handshake; failing lists the nodes that
	// did not in the last probe, for the log (only Run touches either).
	good    int
	failing string
}

// NewHandshakeProbe probes url (one broker URL or a comma-separated list of the nodes
// of one cluster) every interval, each dial bounded by timeout (use HandshakeInterval
// and HandshakeTimeout); the connections it opens are named name.
func NewHandshakeProbe(url, name string, log *slog.Logger, interval, timeout time.Duration) *HandshakeProbe {
	return &HandshakeProbe{urls: SplitURLs(url), name: name, log: log.With("amqp_conn", name), interval: interval, timeout: timeout, last: ErrHandshakeUnchecked}
}

// Run probes at once and then every interval until ctx ends. Each probe is bounded by
// the timeout, so Run returns at most that long after ctx ends.
func (p *HandshakeProbe) Run(ctx context.Context) error {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		p.record(p.probeNodes(ctx))
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

// probeNodes probes the nodes, starting with the one that answered last, until one
// completes the handshake; it stops early when ctx ends, so Run returns within one
// timeout. The error lists every node's failure.
func (p *HandshakeProbe) probeNodes(ctx context.Context) error {
	var errs []error
	var failing []string
	for k := range p.urls {
		i := (p.good + k) % len(p.urls)
		if k > 0 && ctx.Err() != nil {
			break
		}
		err := p.probe(p.urls[i])
		if err == nil {
			p.good = i
			p.noteFailing(failing)
			return nil
		}
		failing = append(failing, NodeLabel(p.urls[i]))
		if len(p.urls) > 1 {
			err = fmt.Errorf("%s: %w", NodeLabel(p.urls[i]), err)
		}
		errs = append(errs, err)
	}
	p.noteFailing(nil) // all failed: record says so
	return errors.Join(errs...)
}

// noteFailing logs the nodes a probe had to pass over before one completed the
// handshake, once for each new such set (a probe that succeeds at once clears it): the
// service stays ready, but those nodes need attention.
func (p *HandshakeProbe) noteFailing(nodes []string) {
	now := strings.Join(nodes, ", ")
	if now == p.failing {
		return
	}
	p.failing = now
	if now != "" {
		p.log.Warn("rabbitmq nodes do not complete new AMQP connections; another node does", "nodes", now)
	}
}

// probe opens a connection to url and closes it, both within the timeout.
func (p *HandshakeProbe) probe(url string) error {
	conn, err := amqp.DialConfig(url, amqp.Config{
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
