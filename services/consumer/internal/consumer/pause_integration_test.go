//go:build integration

package consumer

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

func numbered(from, n int) []amqp.Publishing {
	out := make([]amqp.Publishing, n)
	for i := range out {
		out[i] = jsonMsg(fmt.Sprintf("m-%d", from+i), map[string]int{"n": from + i})
		out[i].Timestamp = time.Now()
	}
	return out
}

// ready is the queue's ready count (-1: no queue).
func (e *env) ready(tenantID string) int {
	q, err := amqptest.Inspect(e.t, e.amqp, rabbit.QueueName(tenantID))
	if err != nil {
		return -1
	}
	return q.Messages
}

// Pausing while a backlog flows stops consumption: deliveries already prefetched are
// stored (or go back to the queue), none is lost; while paused the queue grows and
// nothing is stored, workers report 0; resume stores the rest, each message once.
func TestPauseStopsConsumptionAndResumeDrains(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(2)
	e.requireConsumers(id, 2)
	require.Eventually(t, func() bool { return e.workersReported(id) == 2 }, 5*time.Second, 20*time.Millisecond)

	pub := e.publisher()
	pub.publish(id, numbered(0, 2000)...)
	e.append(id, 2, events.TenantPaused{}) // while the backlog is being consumed
	e.requireConsumers(id, 0)
	require.Eventually(t, func() bool { return e.workersReported(id) == 0 }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(svc.m.paused.WithLabelValues(id)))
	// In-flight deliveries settle: stored plus ready accounts for every message.
	require.Eventually(t, func() bool {
		rows, _ := e.stored(id)
		return rows+e.ready(id) == 2000 && testutil.ToFloat64(svc.m.unacked.WithLabelValues(id)) == 0
	}, 10*time.Second, 20*time.Millisecond, "every prefetched delivery is stored or back in the queue")
	before, _ := e.stored(id)
	t.Logf("stored %d of 2000 before the pause took hold", before)

	pub.publish(id, numbered(2000, 100)...)
	require.Eventually(t, func() bool { return e.ready(id) == 2100-before }, 5*time.Second, 20*time.Millisecond, "the queue grows while paused")
	// Absence cannot be polled: give the reconciler a few passes to (wrongly) start workers.
	time.Sleep(3 * svc.cfg.ReconcileInterval)
	rows, _ := e.stored(id)
	require.Equal(t, before, rows, "nothing stored while paused")
	require.Zero(t, e.consumers(rabbit.QueueName(id)))

	e.append(id, 3, events.TenantResumed{})
	e.requireConsumers(id, 2)
	e.requireStored(id, 2100)
	require.Eventually(t, func() bool { return e.workersReported(id) == 2 }, 5*time.Second, 20*time.Millisecond)
	require.Zero(t, testutil.ToFloat64(svc.m.paused.WithLabelValues(id)))
	require.Positive(t, testutil.CollectAndCount(svc.m.deliveryLag), "timestamped deliveries are measured")
}

// A drain-then-delete runs the tenant's workers even though it is paused, and a
// resize while paused changes only the desired count.
func TestDrainingRunsPausedTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)
	e.append(id, 2, events.TenantPaused{})
	e.requireConsumers(id, 0)
	e.append(id, 3, events.TenantConcurrencyChanged{Workers: 2})
	e.publisher().publish(id, numbered(0, 50)...)
	require.Eventually(t, func() bool { return e.ready(id) == 50 }, 5*time.Second, 20*time.Millisecond)
	require.Zero(t, e.consumers(rabbit.QueueName(id)), "resized while paused: still no workers")

	e.append(id, 4, events.TenantDeletionRequested{DrainTimeoutSeconds: 60, Deadline: time.Now().Add(time.Minute)})
	e.requireConsumers(id, 2)
	e.requireStored(id, 50)
	require.Zero(t, testutil.ToFloat64(svc.m.paused.WithLabelValues(id)))
	e.publisher().publish(id, amqp.Publishing{MessageId: "poison", Body: []byte("{")})
	e.requireArchived(id, 1, 5*time.Second)

	// The drain ends in a deletion: the queues, partition and dead letters go as for a
	// plain delete.
	e.append(id, 5, events.TenantDeleted{})
	require.Eventually(t, func() bool { return e.consumers(rabbit.QueueName(id)) == -1 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return !e.partitionExists(id) }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return len(e.archived(id)) == 0 }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return testutil.CollectAndCount(svc.m.paused) == 0 }, 5*time.Second, 20*time.Millisecond,
		"the tenant's gauges are forgotten")
}
