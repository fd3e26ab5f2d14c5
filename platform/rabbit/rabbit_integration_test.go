//go:build integration

package rabbit_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

func TestConnReconnectsAndDeclaresTopology(t *testing.T) {
	t.Parallel()
	conn := rabbit.NewConn(amqptest.URL(t), "rabbit-test", quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	require.NoError(t, conn.WaitConnected(ctx))
	require.NoError(t, conn.Ping(ctx))

	tenant := uuid.NewString()
	amqptest.CleanupTenant(t, tenant)
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbit.DefaultTopology.DeclareTenant(ch, tenant))
	require.NoError(t, rabbit.DefaultTopology.DeclareTenant(ch, tenant), "declaring twice is a no-op")

	// The tenant's exchange routes to its queue whatever the routing key. A message
	// rejected without requeue lands in the tenant's DLQ through dlx_exchange.
	require.NoError(t, ch.PublishWithContext(ctx, rabbit.ExchangeName(tenant), "any-key", false, false, amqp.Publishing{Body: []byte(`{}`)}))
	var d amqp.Delivery
	require.Eventually(t, func() bool {
		var ok bool
		d, ok, err = ch.Get(rabbit.QueueName(tenant), false)
		return err == nil && ok
	}, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, d.Reject(false))
	require.Eventually(t, func() bool {
		q, err := rabbit.Inspect(ch, rabbit.DLQName(tenant))
		return err == nil && q.Messages == 1
	}, 5*time.Second, 20*time.Millisecond)

	// Force-close the connection: Run must reconnect.
	c, err := conn.Connection()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool {
		c2, err := conn.Connection()
		return err == nil && c2 != c
	}, 10*time.Second, 20*time.Millisecond)

	ch2, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbit.DeleteTenant(ch2, tenant))
	ch3, err := conn.Channel()
	require.NoError(t, err)
	_, err = rabbit.Inspect(ch3, rabbit.QueueName(tenant))
	require.Error(t, err, "queue is gone after DeleteTenant")
	ch4, err := conn.Channel()
	require.NoError(t, err)
	err = ch4.ExchangeDeclarePassive(rabbit.ExchangeName(tenant), amqp.ExchangeFanout, true, false, false, false, nil)
	require.Error(t, err, "exchange is gone after DeleteTenant")
	ch5, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbit.DeleteTenant(ch5, tenant), "deleting again is a no-op")
}

func TestConnReportsDownBroker(t *testing.T) {
	t.Parallel()
	conn := rabbit.NewConn("amqp://guest:guest@127.0.0.1:1/", "down", quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- conn.Run(ctx) }()
	require.ErrorIs(t, conn.Ping(ctx), rabbit.ErrNotConnected)
	cancel()
	require.NoError(t, <-done, "Run stops cleanly on cancel even when never connected")
}

func TestHandshakeProbePassesOnRealBroker(t *testing.T) {
	t.Parallel()
	p := rabbit.NewHandshakeProbe(amqptest.URL(t), "probe-test", quiet(), 50*time.Millisecond, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	require.Eventually(t, func() bool { return p.Check(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
}
