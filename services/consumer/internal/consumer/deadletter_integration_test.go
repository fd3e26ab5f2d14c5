//go:build integration

package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
)

// dlqMessages is the DLQ's message count (-1: no DLQ).
func (e *env) dlqMessages(tenantID string) int {
	q, err := amqptest.Inspect(e.t, e.amqp, rabbit.DLQName(tenantID))
	if err != nil {
		return -1
	}
	return q.Messages
}

func (e *env) deleteDLQ(tenantID string) {
	e.t.Helper()
	ch, err := e.amqp.Channel()
	require.NoError(e.t, err)
	defer ch.Close()
	_, err = ch.QueueDelete(rabbit.DLQName(tenantID), false, false, false)
	require.NoError(e.t, err)
}

// A dead letter whose DLQ was deleted by hand is unroutable: publish must report it
// (so the original is not acked) and declare the topology again; the retry lands.
func TestDeadLetterUnroutableIsNotLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := uuid.NewString()
	amqptest.CleanupTenant(t, tenant)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := rabbit.NewConn(amqptest.URL(t), "deadletter-test", testLogger())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.NoError(t, conn.WaitConnected(ctx))

	declare := func(id string) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		return rabbit.DeclareTenant(ch, id)
	}
	require.NoError(t, declare(tenant))
	e.deleteDLQ(tenant)

	dl := &deadLetterer{conn: conn, declare: declare}
	defer dl.close()
	msg := message.NewMessage("poison", []byte(`{"broken":`))
	msg.Metadata.Set(amqpsub.MetaMessageID, "poison")
	err := dl.publish(ctx, tenant, msg, "invalid_json: test")
	require.ErrorIs(t, err, errUnroutable)
	require.Equal(t, 0, e.dlqMessages(tenant), "the DLQ is declared again, empty")

	require.NoError(t, dl.publish(ctx, tenant, msg, "invalid_json: test"))
	require.Equal(t, 1, e.dlqMessages(tenant))
}

// End to end: with the DLQ deleted by hand, a poison message still ends up in the
// (declared again) DLQ.
func TestPoisonMessageReachesRedeclaredDLQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)
	e.deleteDLQ(id)

	e.publisher().publish(id, amqp.Publishing{MessageId: "bad-json", Body: []byte(`{"broken":`)})
	require.Eventually(t, func() bool { return e.dlqMessages(id) == 1 }, 10*time.Second, 20*time.Millisecond)
	q, err := amqptest.Inspect(t, e.amqp, rabbit.QueueName(id))
	require.NoError(t, err)
	require.Zero(t, q.Messages, "the original is settled")
}
