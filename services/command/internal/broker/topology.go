// Package broker is the command service's side of RabbitMQ: declaring a tenant's
// queues before its creation is acknowledged, and publishing messages with confirms.
package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
)

// ErrUnavailable means the broker could not take or confirm the request in time.
var ErrUnavailable = errors.New("rabbitmq unavailable")

// Topology declares and deletes tenant queues on a shared connection.
type Topology struct {
	conn    *rabbit.Conn
	timeout time.Duration
}

// NewTopology uses conn; every operation gets its own short-lived channel, because a
// failed declare closes the channel it ran on.
func NewTopology(conn *rabbit.Conn) *Topology {
	return &Topology{conn: conn, timeout: 5 * time.Second}
}

// DeclareTenant declares the tenant's work queue and DLQ with their dead-letter
// settings. It fails fast when the broker is down.
func (t *Topology) DeclareTenant(ctx context.Context, tenantID string) error {
	return t.withChannel(ctx, func(ch *amqp.Channel) error { return rabbit.DeclareTenant(ch, tenantID) })
}

// DeleteTenant deletes the tenant's queues (used to undo a declare whose tenant was
// never recorded).
func (t *Topology) DeleteTenant(ctx context.Context, tenantID string) error {
	return t.withChannel(ctx, func(ch *amqp.Channel) error { return rabbit.DeleteTenant(ch, tenantID) })
}

// withChannel runs fn on a fresh channel, bounded by the timeout: amqp091's
// synchronous methods take no context, so a stalled broker would otherwise hang
// the request.
func (t *Topology) withChannel(ctx context.Context, fn func(*amqp.Channel) error) error {
	ch, err := t.conn.Channel()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	done := make(chan error, 1)
	// The goroutine ends when the broker answers or the connection drops (heartbeats
	// detect a dead peer), whichever comes first; the request does not wait for it.
	go func() {
		err := fn(ch)
		_ = ch.Close()
		done <- err
	}()
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}
