//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/proctest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// TestSIGKILLStoresEveryMessageOnce publishes 5,000 messages over 5 tenants, kills the
// consumer with SIGKILL twice while it works, restarts it, and checks every message is
// stored exactly once. It ends with SIGTERM, which must exit 0.
func TestSIGKILLStoresEveryMessageOnce(t *testing.T) {
	t.Parallel()
	const tenants, perTenant = 5, 1000
	const total = tenants * perTenant
	ctx := context.Background()
	db := pgtest.New(t)
	es := eventstore.New(postgres.OpenDB(db.Pool), watermill.NopLogger{})
	conn := amqptest.Dial(t)

	dir := t.TempDir()
	require.NoError(t, proctest.Build(dir, "."), "build consumer")
	bin := filepath.Join(dir, "consumer")

	// Registered before the process cleanup, so the consumer is killed before its
	// queues are deleted.
	ids := make([]string, tenants)
	for i := range ids {
		ids[i] = uuid.NewString()
		amqptest.CleanupTenant(t, ids[i])
	}
	addr := proctest.FreeAddr(t)
	env := map[string]string{
		"DATABASE_URL": db.URL, "RABBITMQ_URL": amqptest.URL(t),
		"LOG_LEVEL": "warn", "SHUTDOWN_TIMEOUT": "10s", "CONFIG_FILE": "",
	}
	// Every run reuses the address; each Proc logs its output if the test fails.
	var current *proctest.Proc
	start := func() {
		current = proctest.Start(t, bin, addr, env)
		current.WaitStatus(t, "/readyz", http.StatusOK, 20*time.Second)
	}
	kill := func() { current.Kill(t) }

	start()
	for i := range ids {
		env, err := events.NewEnvelope(ids[i], 1, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now()},
			events.TenantCreated{Name: "kill-" + ids[i][:8], Workers: 3})
		require.NoError(t, err)
		_, err = es.Append(ctx, []events.Envelope{env}, nil)
		require.NoError(t, err)
	}
	for _, id := range ids {
		require.Eventually(t, func() bool {
			q, err := amqptest.Inspect(t, conn, rabbit.QueueName(id))
			return err == nil && q.Consumers == 3
		}, 5*time.Second, 20*time.Millisecond)
	}

	// The producer runs independently of the consumer's crashes.
	pubDone := make(chan error, 1)
	go func() { pubDone <- publishAll(conn, ids, perTenant) }()

	stored := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n))
		return n
	}
	began := time.Now()
	for _, at := range []int{total / 5, total / 2} {
		require.Eventually(t, func() bool { return stored() >= at }, 30*time.Second, 2*time.Millisecond)
		before := stored()
		kill()
		t.Logf("SIGKILL at %d stored", before)
		start()
	}
	require.NoError(t, <-pubDone)
	require.Eventually(t, func() bool { return stored() >= total }, 60*time.Second, 20*time.Millisecond)
	t.Logf("all %d messages stored %s after publishing began", total, time.Since(began).Round(time.Millisecond))

	var rows, distinct int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (tenant_id, id)) FROM messages`).Scan(&rows, &distinct))
	require.Equal(t, total, rows)
	require.Equal(t, total, distinct)
	for _, id := range ids {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1`, id).Scan(&n))
		require.Equal(t, perTenant, n, "tenant %s", id)
		q, err := amqptest.Inspect(t, conn, rabbit.DLQName(id))
		require.NoError(t, err)
		require.Zero(t, q.Messages, "nothing dead-lettered for %s", id)
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters WHERE tenant_id = $1`, id).Scan(&n))
		require.Zero(t, n, "nothing archived as a dead letter for %s", id)
	}

	// queue_messages_pending is sampled every RECONCILE_INTERVAL, so poll.
	require.Eventually(t, func() bool {
		metrics := httpGet(t, "http://"+addr+"/metrics")
		for _, name := range []string{"tenant_workers_current{", "queue_messages_pending{", "messages_processed_total{", "consumer_message_processing_seconds_bucket",
			"queue_messages_unacked{", "tenant_paused{", "consumer_tenant_delivery_lag_seconds{"} {
			if !strings.Contains(metrics, name) {
				return false
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond, "metrics exposed")

	// Graceful shutdown exits 0.
	code, _ := current.Terminate(t, 15*time.Second)
	require.Equal(t, 0, code, "exit status after SIGTERM")
	// Queues survive shutdown.
	_, err := amqptest.Inspect(t, conn, rabbit.QueueName(ids[0]))
	require.NoError(t, err)
}

// publishAll publishes perTenant persistent messages to each tenant with confirms,
// interleaving tenants in batches.
func publishAll(conn *amqp.Connection, ids []string, perTenant int) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	const batch = 100
	for off := 0; off < perTenant; off += batch {
		var confs []*amqp.DeferredConfirmation
		for _, id := range ids {
			for i := off; i < off+batch && i < perTenant; i++ {
				c, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", rabbit.QueueName(id), true, false, amqp.Publishing{
					MessageId: uuid.NewString(), DeliveryMode: amqp.Persistent, ContentType: "application/json",
					Body: []byte(fmt.Sprintf(`{"tenant":%q,"n":%d}`, id, i)),
				})
				if err != nil {
					return err
				}
				confs = append(confs, c)
			}
		}
		for _, c := range confs {
			ok, err := c.WaitContext(context.Background())
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("publish nacked")
			}
		}
	}
	return nil
}

func httpGet(t *testing.T, url string) string {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}
