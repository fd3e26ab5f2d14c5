//go:build integration

package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// TestGracefulStopFinishesInFlight stops the service mid-stream: every message is
// either stored or still queued, none is stored twice, and no stored message is left in
// the queue (its ack was applied before the channel closed). Messages the broker had
// already sent when the consumer was cancelled come back to the queue with
// x-delivery-count 1 (RabbitMQ 3.10 quorum queues count that); there are at most one
// prefetch window per worker of those, and none of them was stored.
func TestGracefulStopFinishesInFlight(t *testing.T) {
	t.Parallel()
	const n, workers, prefetch = 3000, 3, 64
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(workers)
	e.requireConsumers(id, workers)

	msgs := make([]amqp.Publishing, n)
	for i := range msgs {
		msgs[i] = jsonMsg(uuid.NewString(), map[string]int{"n": i})
	}
	e.publisher().publish(id, msgs...)
	require.Eventually(t, func() bool { rows, _ := e.stored(id); return rows >= n/10 }, 10*time.Second, 2*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, svc.Stop(ctx))
	e.requireConsumers(id, 0)

	rows, distinct := e.stored(id)
	require.Equal(t, rows, distinct)
	ch, err := e.amqp.Channel()
	require.NoError(t, err)
	defer ch.Close()
	left, returned := 0, 0
	for {
		d, ok, err := ch.Get(rabbit.QueueName(id), true)
		require.NoError(t, err)
		if !ok {
			break
		}
		left++
		var stored int
		require.NoError(t, e.db.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM messages WHERE tenant_id = $1 AND id = $2`, id, d.MessageId).Scan(&stored))
		require.Zero(t, stored, "message %s was stored but its ack was lost", d.MessageId)
		if c := fmt.Sprint(d.Headers["x-delivery-count"]); c != "<nil>" && c != "0" {
			returned++
		}
	}
	require.Equal(t, n, rows+left, "stored %d + left in queue %d", rows, left)
	require.LessOrEqual(t, returned, workers*prefetch, "returned deliveries are bounded by the prefetch windows")
	t.Logf("stopped with %d stored, %d still queued, %d of them sent after cancel and returned", rows, left, returned)
}

// TestDatabaseOutageRetriesInPlace cuts the service's database connections again and
// again while messages arrive: commits are retried, nothing valid is dead-lettered or
// requeued, and every message is stored once.
func TestDatabaseOutageRetriesInPlace(t *testing.T) {
	t.Parallel()
	const n = 600
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(2)
	e.requireConsumers(id, 2)

	admin, err := pgx.Connect(context.Background(), pgtest.ServerURL(t))
	require.NoError(t, err)
	defer admin.Close(context.Background())
	var dbName string
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&dbName))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, _ = admin.Exec(context.Background(),
				`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`,
				dbName, serviceAppName)
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	pub := e.publisher()
	for i := 0; i < n; i += 100 {
		batch := make([]amqp.Publishing, 100)
		for j := range batch {
			batch[j] = jsonMsg(uuid.NewString(), map[string]int{"n": i + j})
		}
		pub.publish(id, batch...)
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(svc.m.storeRetries) > 0 }, 10*time.Second, 10*time.Millisecond,
		"the outage should make commits fail and retry")
	close(stop)
	wg.Wait()

	e.requireStored(id, n)
	q, err := amqptest.Inspect(t, e.amqp, rabbit.DLQName(id))
	require.NoError(t, err)
	require.Zero(t, q.Messages, "nothing dead-lettered")
	require.Empty(t, e.archived(id), "nothing archived as a dead letter")
	require.Zero(t, testutil.ToFloat64(svc.m.processed.WithLabelValues(id, OutcomeRequeued)))
	require.Zero(t, testutil.ToFloat64(svc.m.processed.WithLabelValues(id, OutcomeAbandoned)))
	t.Logf("store retries during the outage: %.0f", testutil.ToFloat64(svc.m.storeRetries))
}
