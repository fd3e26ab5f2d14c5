// Package rabbit owns RabbitMQ connections (with reconnect) and the tenant queue topology.
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

// ErrNotConnected is returned while the broker is unreachable.
var ErrNotConnected = errors.New("rabbitmq not connected")

// Conn is one AMQP connection kept open by Run: when the broker goes away it redials
// with backoff and logs each attempt. Callers take channels from the current connection.
//
// The URL may list several nodes of one cluster, comma-separated: a failed dial moves
// on to the next node at once, a lost connection redials the next node first, and the
// backoff applies only once every node failed in a row, so one dead node costs a
// failover a single dial.
type Conn struct {
	urls []string
	name string
	log  *slog.Logger
	// dial opens a connection (amqp.DialConfig; tests replace it).
	dial             func(url string, cfg amqp.Config) (*amqp.Connection, error)
	initial, maxWait time.Duration

	mu        sync.RWMutex
	conn      *amqp.Connection
	node      string        // NodeLabel of the node conn is connected to
	connected chan struct{} // closed while conn is usable; replaced on loss
}

// NewConn prepares a connection to url, one broker URL or a comma-separated list of
// the nodes of one cluster; nothing is dialled until Run.
func NewConn(url, name string, log *slog.Logger) *Conn {
	return &Conn{
		urls: SplitURLs(url), name: name, log: log.With("amqp_conn", name),
		dial: amqp.DialConfig, initial: initialBackoff, maxWait: maxBackoff,
		connected: make(chan struct{}),
	}
}

// Run dials and keeps the connection open until ctx ends, then closes it.
func (c *Conn) Run(ctx context.Context) error {
	nodes := newFailover(len(c.urls), c.initial, c.maxWait)
	for {
		url := c.urls[nodes.node()]
		node := NodeLabel(url)
		conn, err := c.dial(url, amqp.Config{
			Heartbeat:  5 * time.Second,
			Locale:     "en_US",
			Properties: amqp.Table{"connection_name": c.name},
			Dial:       amqp.DefaultDial(3 * time.Second),
		})
		if err != nil {
			wait := nodes.dialFailed()
			if wait == 0 {
				c.log.Warn("rabbitmq node not reachable, trying the next one", "node", node, "err", err, "next_node", NodeLabel(c.urls[nodes.node()]))
				continue
			}
			c.log.Warn("rabbitmq not reachable, retrying", "node", node, "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		nodes.connected()
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		c.mu.Lock()
		c.conn = conn
		c.node = node
		close(c.connected)
		c.mu.Unlock()
		c.log.Info("rabbitmq connected", "node", node)

		select {
		case <-ctx.Done():
			c.markDown()
			_ = conn.Close()
			return nil
		case amqpErr := <-closed:
			c.markDown()
			nodes.lost()
			c.log.Warn("rabbitmq connection lost, reconnecting", "node", node, "err", amqpErr, "next_node", NodeLabel(c.urls[nodes.node()]))
		}
	}
}

func (c *Conn) markDown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = nil
	c.node = ""
	c.connected = make(chan struct{})
}

// Connection returns the live connection or ErrNotConnected.
func (c *Conn) Connection() (*amqp.Connection, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.conn == nil || c.conn.IsClosed() {
		return nil, ErrNotConnected
	}
	return c.conn, nil
}

// Node names the node the connection is up to (scheme, host, port and vhost, no
// credentials), or "" while down.
func (c *Conn) Node() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.conn == nil || c.conn.IsClosed() {
		return ""
	}
	return c.node
}

// Connected returns a channel closed once a connection is up (the current one, if any).
func (c *Conn) Connected() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.connected
}

// WaitConnected blocks until connected or ctx ends.
func (c *Conn) WaitConnected(ctx context.Context) error {
	select {
	case <-c.Connected():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for rabbitmq: %w", ctx.Err())
	}
}

// Channel opens a channel on the live connection.
func (c *Conn) Channel() (*amqp.Channel, error) {
	conn, err := c.Connection()
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	return ch, nil
}

// Ping backs /readyz: the connection is up.
func (c *Conn) Ping(context.Context) error {
	_, err := c.Connection()
	return err
}
