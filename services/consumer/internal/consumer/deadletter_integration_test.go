//go:build integration

package consumer

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rabbitadmin"
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
		return rabbit.DefaultTopology.DeclareTenant(ch, id)
	}
	require.NoError(t, declare(tenant))
	e.deleteDLQ(tenant)

	dl := &deadLetterer{conn: conn, declare: declare}
	defer dl.close()
	msg := message.NewMessage("poison", []byte(`{"broken":`))
	msg.Metadata.Set(amqpsub.MetaMessageID, "poison")
	err := dl.publish(ctx, tenant, msg, newDeadLetter(msg, "invalid_json: test"))
	require.ErrorIs(t, err, errUnroutable)
	require.Equal(t, 0, e.dlqMessages(tenant), "the DLQ is declared again, empty")

	require.NoError(t, dl.publish(ctx, tenant, msg, newDeadLetter(msg, "invalid_json: test")))
	require.Equal(t, 1, e.dlqMessages(tenant))
}

// End to end: with the DLQ deleted by hand, a poison message still ends up in the
// (declared again) DLQ and from there in the archive.
func TestPoisonMessageReachesRedeclaredDLQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)
	e.deleteDLQ(id)

	e.publisher().publish(id, amqp.Publishing{MessageId: "bad-json", Body: []byte(`{"broken":`)})
	require.Equal(t, "invalid_json", e.requireArchived(id, 1, 10*time.Second)["bad-json"].reason)
	q, err := amqptest.Inspect(t, e.amqp, rabbit.QueueName(id))
	require.NoError(t, err)
	require.Zero(t, q.Messages, "the original is settled")
}

// A DLQ at its bound (overflow reject-publish) refuses a dead letter: the poison message
// is not lost but stays unacked in the tenant's queue, counted, and lands once the DLQ
// has room again. The archive is off: it would keep the DLQ empty.
func TestFullDLQHoldsPoisonBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1<<16, func(s *Service) { s.noArchive = true })
	id := e.createTenant(1)
	e.requireConsumers(id, 1)

	// A policy for this tenant's DLQ only, above the deployment-wide bound.
	admin := amqptest.Admin(t)
	ctx := context.Background()
	policy := "test-dlq-bound-" + id
	require.NoError(t, admin.PutPolicy(ctx, "/", policy, rabbitadmin.Policy{
		Pattern: "^" + regexp.QuoteMeta(rabbit.DLQName(id)) + "$", Definition: rabbit.DLQPolicy(1), Priority: 100, ApplyTo: "queues",
	}))
	t.Cleanup(func() { _ = admin.DeletePolicy(context.Background(), "/", policy) })
	require.Eventually(t, func() bool {
		q, err := admin.Queue(ctx, "/", rabbit.DLQName(id))
		return err == nil && q.Policy == policy
	}, 10*time.Second, 50*time.Millisecond, "policy applied to the DLQ")

	e.publisher().publish(id,
		amqp.Publishing{MessageId: "poison-1", Body: []byte(`{"broken":`)},
		amqp.Publishing{MessageId: "poison-2", Body: []byte(`{"broken":`)},
		amqp.Publishing{MessageId: "poison-3", Body: []byte(`{"broken":`)},
	)
	// A classic queue refuses a publish at max-length; a quorum queue only once it holds
	// more, so there a bound of 1 takes two.
	held := 1
	if rabbit.DefaultTopology.DLQ == rabbit.Quorum {
		held = 2
	}
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(svc.m.deadLettersRefused.WithLabelValues(id)) >= 1
	}, 10*time.Second, 20*time.Millisecond, "a dead letter past the bound is refused and counted")
	require.Equal(t, held, e.dlqMessages(id))

	// Room again: the held-back message is dead-lettered on its next retry.
	ch, err := e.amqp.Channel()
	require.NoError(t, err)
	defer ch.Close()
	got := map[string]bool{}
	require.Eventually(t, func() bool {
		d, ok, err := ch.Get(rabbit.DLQName(id), true)
		require.NoError(t, err)
		if ok {
			got[d.MessageId] = true
		}
		return len(got) == 3
	}, 15*time.Second, 50*time.Millisecond, "every poison message reaches the DLQ, none is lost")
}
