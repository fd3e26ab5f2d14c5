//go:build integration

package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

func runConn(t *testing.T) *rabbit.Conn {
	t.Helper()
	conn := rabbit.NewConn(amqptest.URL(t), "publisher-retire-test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, conn.WaitConnected(wctx))
	return conn
}

// A nacked publish retires its channel: the next publish gets a fresh one (a channel
// opened during a quorum queue leader change may nack everything sent to that queue),
// and the retired channel closes only once no publish uses it.
func TestNackRetiresTheChannel(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	amqptest.CleanupTenant(t, id)
	admin := amqptest.Dial(t)
	ch, err := admin.Channel()
	require.NoError(t, err)
	// A queue that refuses every message: each publish to it is nacked.
	_, err = ch.QueueDeclare(rabbit.QueueName(id), true, false, false, false, amqp.Table{
		"x-queue-type": "classic", "x-max-length": int32(0), "x-overflow": "reject-publish",
	})
	require.NoError(t, err)
	require.NoError(t, ch.Close())

	conn := runConn(t)
	p := NewPublisher(conn, slog.New(slog.NewTextHandler(io.Discard, nil)), PublisherOptions{Channels: 1})
	t.Cleanup(p.Close)
	s := p.slots[0]
	first, err := s.get(conn)
	require.NoError(t, err)
	first.release()

	err = p.Publish(context.Background(), Message{ID: uuid.NewString(), TenantID: id, Body: []byte(`{}`)})
	require.ErrorIs(t, err, ErrUnavailable)
	require.False(t, errors.Is(err, ErrUnconfirmed), "a nack is a definite no: %v", err)
	require.ErrorContains(t, err, "nacked")
	require.Eventually(t, first.isClosed, 5*time.Second, 10*time.Millisecond, "the nacked channel is closed")

	second, err := s.get(conn)
	require.NoError(t, err)
	require.NotSame(t, first, second, "the slot opened a fresh channel")
	// Retired while in use: it stays open until that use ends.
	s.retire(second)
	time.Sleep(50 * time.Millisecond)
	require.False(t, second.isClosed(), "a publish still waits for its confirm on it")
	second.release()
	require.Eventually(t, second.isClosed, 5*time.Second, 10*time.Millisecond)
}
