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
type Conn struct {
	url  string
	name string
	log  *slog.Logger

	mu        sync.RWMutex
	conn      *amqp.Connection
	connected chan struct{} // closed while conn is usable; replaced on loss
}

// NewConn prepares a connection; nothing is dialled until Run.
func NewConn(url, name string, log *slog.Logger) *Conn {
	return &Conn{url: url, name: name, log: log.With("amqp_conn", name), connected: make(chan struct{})}
}

// Run dials and keeps the connection open until ctx ends, then closes it.
func (c *Conn) Run(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		conn, err := amqp.DialConfig(c.url, amqp.Config{
			Heartbeat:  5 * time.Second,
			Locale:     "en_US",
			Properties: amqp.Table{"connection_name": c.name},
			Dial:       amqp.DefaultDial(3 * time.Second),
		})
		if err != nil {
			c.log.Warn("rabbitmq not reachable, retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		c.mu.Lock()
		c.conn = conn
		close(c.connected)
		c.mu.Unlock()
		c.log.Info("rabbitmq connected")

		select {
		case <-ctx.Done():
			c.markDown()
			_ = conn.Close()
			return nil
		case amqpErr := <-closed:
			c.markDown()
			c.log.Warn("rabbitmq connection lost, reconnecting", "err", amqpErr)
		}
	}
}

func (c *Conn) markDown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = nil
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
