//go:build integration

package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// queueTypeOf asks the management API what type the broker gave a queue.
func queueTypeOf(t *testing.T, name string) string {
	t.Helper()
	q, err := amqptest.Admin(t).Queue(context.Background(), "/", name)
	require.NoError(t, err)
	return q.Type
}

// Under every combination of queue types the consumer declares the tenant's queues
// with them, stores good messages and archives poison ones from the DLQ.
func TestEachQueueTypeStoresAndArchives(t *testing.T) {
	t.Parallel()
	for _, topo := range []rabbit.Topology{
		{Queue: rabbit.Quorum, DLQ: rabbit.Quorum},
		{Queue: rabbit.Quorum, DLQ: rabbit.Classic},
		{Queue: rabbit.Classic, DLQ: rabbit.Quorum},
		{Queue: rabbit.Classic, DLQ: rabbit.Classic},
	} {
		t.Run(fmt.Sprintf("%s-%s", topo.Queue, topo.DLQ), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.startService(1<<16, func(s *Service) { s.d.Topology = topo })
			id := e.createTenant(2)
			e.requireConsumers(id, 2)
			require.Equal(t, string(topo.Queue), queueTypeOf(t, rabbit.QueueName(id)))
			require.Equal(t, string(topo.DLQ), queueTypeOf(t, rabbit.DLQName(id)))

			e.publisher().publish(id,
				jsonMsg("good-1", map[string]int{"n": 1}),
				amqp.Publishing{MessageId: "bad-json", Body: []byte(`{"broken":`)},
				jsonMsg("good-2", map[string]int{"n": 2}),
			)
			e.requireStored(id, 2)
			reasons := e.requireArchived(id, 1, 10*time.Second)
			require.Equal(t, "invalid_json", reasons["bad-json"].reason)
		})
	}
}

// A tenant whose queues were declared under other queue types (the settings changed
// since) keeps them: the consumer runs it instead of failing its set-up in a loop.
func TestExistingQueuesKeepTheirType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createTenant(1)
	ch, err := e.amqp.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, rabbit.Topology{Queue: rabbit.Quorum, DLQ: rabbit.Quorum}.DeclareTenant(ch, id))

	e.startService(1<<16, func(s *Service) { s.d.Topology = rabbit.Topology{Queue: rabbit.Classic, DLQ: rabbit.Classic} })
	e.requireConsumers(id, 1)
	require.Equal(t, "quorum", queueTypeOf(t, rabbit.QueueName(id)))
	require.Equal(t, "quorum", queueTypeOf(t, rabbit.DLQName(id)))
	e.publisher().publish(id,
		jsonMsg("good", map[string]int{"n": 1}),
		amqp.Publishing{MessageId: "bad-json", Body: []byte(`{"broken":`)},
	)
	e.requireStored(id, 1)
	e.requireArchived(id, 1, 10*time.Second)
}
