//go:build integration

package rabbit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// queueType asks the management API what type the broker gave a queue.
func queueType(t *testing.T, name string) string {
	t.Helper()
	q, err := amqptest.Admin(t).Queue(context.Background(), "/", name)
	require.NoError(t, err)
	return q.Type
}

func opener(conn *amqp.Connection) rabbit.Opener {
	return func() (*amqp.Channel, error) { return conn.Channel() }
}

// Every combination of QUEUE_TYPE and DLQ_QUEUE_TYPE declares real queues of those
// types, idempotently, and a message rejected from the work queue reaches the DLQ.
func TestDeclareEachQueueType(t *testing.T) {
	t.Parallel()
	conn := amqptest.Dial(t)
	for _, topo := range []rabbit.Topology{
		{Queue: rabbit.Quorum, DLQ: rabbit.Quorum},
		{Queue: rabbit.Quorum, DLQ: rabbit.Classic},
		{Queue: rabbit.Classic, DLQ: rabbit.Quorum},
		{Queue: rabbit.Classic, DLQ: rabbit.Classic},
	} {
		t.Run(fmt.Sprintf("%s-%s", topo.Queue, topo.DLQ), func(t *testing.T) {
			t.Parallel()
			tenant := uuid.NewString()
			amqptest.CleanupTenant(t, tenant)
			for range 2 {
				got, err := topo.Declare(opener(conn), tenant)
				require.NoError(t, err)
				require.Equal(t, topo.Queue, got.Queue)
				require.Equal(t, topo.DLQ, got.DLQ)
				require.Empty(t, got.Kept(topo, tenant))
			}
			require.Equal(t, string(topo.Queue), queueType(t, rabbit.QueueName(tenant)))
			require.Equal(t, string(topo.DLQ), queueType(t, rabbit.DLQName(tenant)))

			ch, err := conn.Channel()
			require.NoError(t, err)
			defer ch.Close()
			require.NoError(t, topo.DeclareTenant(ch, tenant), "the strict declare agrees with Declare")
			ctx := context.Background()
			require.NoError(t, ch.PublishWithContext(ctx, rabbit.ExchangeName(tenant), "", false, false, amqp.Publishing{Body: []byte(`{}`), DeliveryMode: amqp.Persistent}))
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
			}, 5*time.Second, 20*time.Millisecond, "dead-lettered into the DLQ")
		})
	}
}

// A tenant created under one configuration keeps its queues' types when the types
// change: Declare reports what they are instead of failing (the broker cannot change
// a queue's type), while the strict declare shows the broker's refusal.
func TestDeclareKeepsTypeOfExistingQueues(t *testing.T) {
	t.Parallel()
	conn := amqptest.Dial(t)
	tenant := uuid.NewString()
	amqptest.CleanupTenant(t, tenant)
	before := rabbit.Topology{Queue: rabbit.Quorum, DLQ: rabbit.Quorum}
	_, err := before.Declare(opener(conn), tenant)
	require.NoError(t, err)

	after := rabbit.Topology{Queue: rabbit.Classic, DLQ: rabbit.Classic}
	ch, err := conn.Channel()
	require.NoError(t, err)
	err = after.DeclareTenant(ch, tenant)
	var aerr *amqp.Error
	require.ErrorAs(t, err, &aerr)
	require.Equal(t, amqp.PreconditionFailed, aerr.Code)

	for range 2 {
		got, err := after.Declare(opener(conn), tenant)
		require.NoError(t, err)
		require.Equal(t, rabbit.Declared{Queue: rabbit.Quorum, DLQ: rabbit.Quorum}, got)
		require.Equal(t, []string{
			rabbit.QueueName(tenant) + " is quorum",
			rabbit.DLQName(tenant) + " is quorum",
		}, got.Kept(after, tenant))
	}
	require.Equal(t, "quorum", queueType(t, rabbit.QueueName(tenant)))
	require.Equal(t, "quorum", queueType(t, rabbit.DLQName(tenant)))
	// The exchange was still declared and bound after the refusals.
	ch2, err := conn.Channel()
	require.NoError(t, err)
	defer ch2.Close()
	require.NoError(t, ch2.PublishWithContext(context.Background(), rabbit.ExchangeName(tenant), "", true, false, amqp.Publishing{Body: []byte(`{}`)}))
	require.Eventually(t, func() bool {
		q, err := rabbit.Inspect(ch2, rabbit.QueueName(tenant))
		return err == nil && q.Messages == 1
	}, 5*time.Second, 20*time.Millisecond)
}

// A queue declared by hand with arguments of neither type is used as it is.
func TestDeclareToleratesForeignArguments(t *testing.T) {
	t.Parallel()
	conn := amqptest.Dial(t)
	tenant := uuid.NewString()
	amqptest.CleanupTenant(t, tenant)
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	_, err = ch.QueueDeclare(rabbit.QueueName(tenant), true, false, false, false, amqp.Table{"x-queue-type": "classic", "x-max-length": int32(7)})
	require.NoError(t, err)
	got, err := rabbit.DefaultTopology.Declare(opener(conn), tenant)
	require.NoError(t, err)
	require.Equal(t, rabbit.Declared{Queue: "", DLQ: rabbit.DefaultTopology.DLQ}, got)
	require.Equal(t, []string{rabbit.QueueName(tenant) + " is of unknown arguments"}, got.Kept(rabbit.DefaultTopology, tenant))
}

// QUEUE_REPLICAS sets x-quorum-initial-group-size on quorum queues (never on classic
// ones). This single-node broker takes any size and places the one replica it can: the
// broker caps the group at the nodes it has.
func TestDeclareWithReplicas(t *testing.T) {
	t.Parallel()
	conn := amqptest.Dial(t)
	ctx := context.Background()
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprint(replicas), func(t *testing.T) {
			t.Parallel()
			tenant := uuid.NewString()
			amqptest.CleanupTenant(t, tenant)
			topo := rabbit.Topology{Queue: rabbit.Quorum, DLQ: rabbit.Classic, Replicas: replicas}
			for range 2 {
				got, err := topo.Declare(opener(conn), tenant)
				require.NoError(t, err)
				require.Equal(t, rabbit.Declared{Queue: rabbit.Quorum, DLQ: rabbit.Classic, QueueReplicas: replicas}, got)
				require.Empty(t, got.Kept(topo, tenant))
			}
			ch, err := conn.Channel()
			require.NoError(t, err)
			defer ch.Close()
			require.NoError(t, topo.DeclareTenant(ch, tenant), "the strict declare agrees with Declare")

			q, err := amqptest.Admin(t).Queue(ctx, "/", rabbit.QueueName(tenant))
			require.NoError(t, err)
			require.EqualValues(t, replicas, q.Arguments[rabbit.InitialGroupSizeArg])
			require.Len(t, q.Members, 1, "one node: one replica whatever the size asked for")
			dlq, err := amqptest.Admin(t).Queue(ctx, "/", rabbit.DLQName(tenant))
			require.NoError(t, err)
			require.NotContains(t, dlq.Arguments, rabbit.InitialGroupSizeArg, "a classic DLQ gets no group size")
		})
	}
}

// RabbitMQ refuses to redeclare a quorum queue with another or a missing
// x-quorum-initial-group-size (PRECONDITION_FAILED). A changed QUEUE_REPLICAS must not
// wedge existing tenants: Declare keeps the queue's own value, says so, and declares
// the rest of the topology.
func TestDeclareKeepsReplicasOfExistingQueues(t *testing.T) {
	t.Parallel()
	conn := amqptest.Dial(t)
	for _, tc := range []struct{ before, after int }{{3, 0}, {0, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("%d-to-%d", tc.before, tc.after), func(t *testing.T) {
			t.Parallel()
			tenant := uuid.NewString()
			amqptest.CleanupTenant(t, tenant)
			before := rabbit.Topology{Queue: rabbit.Quorum, DLQ: rabbit.Quorum, Replicas: tc.before}
			_, err := before.Declare(opener(conn), tenant)
			require.NoError(t, err)

			after := rabbit.Topology{Queue: rabbit.Quorum, DLQ: rabbit.Quorum, Replicas: tc.after}
			ch, err := conn.Channel()
			require.NoError(t, err)
			err = after.DeclareTenant(ch, tenant)
			var aerr *amqp.Error
			require.ErrorAs(t, err, &aerr)
			require.Equal(t, amqp.PreconditionFailed, aerr.Code, "the broker refuses another group size")
			require.Contains(t, aerr.Reason, rabbit.InitialGroupSizeArg)

			for range 2 {
				got, err := after.Declare(opener(conn), tenant)
				require.NoError(t, err)
				require.Equal(t, rabbit.Declared{Queue: rabbit.Quorum, DLQ: rabbit.Quorum, QueueReplicas: tc.before, DLQReplicas: tc.before}, got)
				kept := "the broker's default initial replica count"
				if tc.before > 0 {
					kept = fmt.Sprintf("%d initial replicas", tc.before)
				}
				require.Equal(t, []string{
					rabbit.QueueName(tenant) + " keeps " + kept,
					rabbit.DLQName(tenant) + " keeps " + kept,
				}, got.Kept(after, tenant))
			}
			// Switching back to the queue types alone (another type) still finds them.
			got, err := rabbit.Topology{Queue: rabbit.Classic, DLQ: rabbit.Classic, Replicas: tc.after}.Declare(opener(conn), tenant)
			require.NoError(t, err)
			require.Equal(t, rabbit.Declared{Queue: rabbit.Quorum, DLQ: rabbit.Quorum, QueueReplicas: tc.before, DLQReplicas: tc.before}, got)

			// The exchange was declared and bound after the refusals: the tenant works.
			ch2, err := conn.Channel()
			require.NoError(t, err)
			defer ch2.Close()
			require.NoError(t, ch2.PublishWithContext(context.Background(), rabbit.ExchangeName(tenant), "", true, false, amqp.Publishing{Body: []byte(`{}`)}))
			require.Eventually(t, func() bool {
				q, err := rabbit.Inspect(ch2, rabbit.QueueName(tenant))
				return err == nil && q.Messages == 1
			}, 5*time.Second, 20*time.Millisecond)
		})
	}
}
