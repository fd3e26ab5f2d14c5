// Package broker is the command service's side of RabbitMQ: declaring a tenant's
// queues before its creation is acknowledged, and publishing messages with confirms.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
)

// ErrUnavailable means the broker could not take or confirm the request in time.
var ErrUnavailable = errors.New("rabbitmq unavailable")

// Topology declares and deletes tenant queues on a shared connection.
type Topology struct {
	conn    *rabbit.Conn
	types   rabbit.Topology
	timeout time.Duration
	log     *slog.Logger
}

// NewTopology uses conn and declares queues of the given types and replica count
// (QUEUE_TYPE, DLQ_QUEUE_TYPE, QUEUE_REPLICAS: the consumer declares the same queues
// and must be given the same);
// every operation gets its own short-lived channel, because a failed declare closes
// the channel it ran on.
func NewTopology(conn *rabbit.Conn, types rabbit.Topology, log *slog.Logger) *Topology {
	return &Topology{conn: conn, types: types, timeout: 5 * time.Second, log: log}
}

// DeclareTenant declares the tenant's work queue and DLQ with their dead-letter
// settings. It fails fast when the broker is down.
func (t *Topology) DeclareTenant(ctx context.Context, tenantID string) error {
	return t.run(ctx, func() error {
		got, err := t.types.Declare(t.conn.Channel, tenantID)
		if err != nil {
			return fmt.Errorf("declare queues of %s: %w", tenantID, err)
		}
		// Only queues left from an earlier tenant of the same id (a creation whose
		// commit outcome was unknown) can differ: they are used as they are.
		if kept := got.Kept(t.types, tenantID); len(kept) > 0 {
			t.log.Warn("tenant queues exist with another type or replica count than QUEUE_TYPE/DLQ_QUEUE_TYPE/QUEUE_REPLICAS ask for; they keep it", "tenant_id", tenantID, "queues", kept)
		}
		return nil
	})
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
	return t.run(ctx, func() error {
		defer func() { _ = ch.Close() }()
		return fn(ch)
	})
}

// run runs fn bounded by the timeout: amqp091's synchronous methods take no context.
func (t *Topology) run(ctx context.Context, fn func() error) error {
	if _, err := t.conn.Connection(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	done := make(chan error, 1)
	// The goroutine ends when the broker answers or the connection drops (heartbeats
	// detect a dead peer), whichever comes first; the request does not wait for it.
	go func() { done <- fn() }()
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}
