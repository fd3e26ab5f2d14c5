//go:build integration && chaos

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// TestSurvivesRealRestarts stops and restarts this machine's real PostgreSQL and RabbitMQ
// while messages flow through the three binaries: a short Postgres restart, a RabbitMQ
// stop_app/start_app, a full RabbitMQ node restart (the Erlang VM exits, every queue is
// recovered from disk) and a 60-second Postgres outage while producers keep publishing.
// Then every confirmed message is stored exactly once and nothing good was dead-lettered
// (neither left in a DLQ nor archived). It disturbs every other user of those servers, so
// it is not part of `make test`: run it alone with `make chaos` (needs the local servers
// and permission to stop them).
func TestSurvivesRealRestarts(t *testing.T) {
	s := startSystem(t)
	// Paced at about 200 messages a second, so publishing spans every outage below.
	const tenants, total = 3, 30000
	const pace = 500 * time.Millisecond // per window of 100
	var ids []string
	for i := range tenants {
		code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants", map[string]any{"name": fmt.Sprintf("chaos-%d-%s", i, uuid.NewString()[:6]), "workers": 2}, nil)
		require.Equal(t, 201, code, "%v", body)
		ids = append(ids, body["id"].(string))
		amqptest.CleanupTenant(t, ids[i])
	}

	var confirmed sync.Map // message id -> tenant
	var sent atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- publishThroughOutages(ctx, amqptest.URL(t), ids, total, pace, &confirmed, &sent) }()

	waitSent := func(n int64) {
		require.Eventually(t, func() bool { return sent.Load() >= n }, 3*time.Minute, 20*time.Millisecond)
	}
	all := []*Proc{s.command, s.consumer, s.query}
	waitReady := func(code int, within time.Duration) {
		for _, p := range all {
			p.WaitStatus(t, "/readyz", code, within)
		}
	}

	waitSent(2000)
	t.Log("restarting PostgreSQL")
	pgctl(t, "stop")
	waitReady(503, 5*time.Second)
	pgctl(t, "start")
	waitReady(200, 30*time.Second)

	waitSent(5000)
	t.Log("stop_app/start_app RabbitMQ")
	run(t, "rabbitmqctl", "stop_app")
	waitReady(503, 10*time.Second)
	run(t, "rabbitmqctl", "start_app")
	waitReady(200, 60*time.Second)

	waitSent(9000)
	t.Log("restarting the RabbitMQ node")
	run(t, "rabbitmqctl", "stop") // returns once the node has exited
	waitReady(503, 10*time.Second)
	// deps.sh starts the local broker the way `make deps` does (its file limit included).
	run(t, "../scripts/deps.sh")
	waitReady(200, 90*time.Second)

	waitSent(13000)
	t.Log("PostgreSQL down for 60 s while producers publish")
	before := sent.Load()
	pgctl(t, "stop")
	waitReady(503, 5*time.Second)
	time.Sleep(60 * time.Second) // the outage itself: nothing to poll for
	require.Greater(t, sent.Load(), before+1000, "producers kept publishing during the outage")
	pgctl(t, "start")
	waitReady(200, 30*time.Second)

	require.NoError(t, <-done)
	want := map[string]bool{}
	confirmed.Range(func(k, _ any) bool { want[k.(string)] = true; return true })
	require.Len(t, want, total)

	conn, err := pgx.Connect(context.Background(), s.env["DATABASE_URL"])
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var rows, distinct int
	require.Eventually(t, func() bool {
		err := conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT id) FROM messages WHERE tenant_id = ANY($1::uuid[])`, ids).Scan(&rows, &distinct)
		return err == nil && rows >= total
	}, 3*time.Minute, 100*time.Millisecond, "stored %d of %d", rows, total)
	require.Equal(t, total, rows, "nothing stored twice")
	require.Equal(t, total, distinct)
	got, err := conn.Query(context.Background(), `SELECT id::text FROM messages WHERE tenant_id = ANY($1::uuid[])`, ids)
	require.NoError(t, err)
	for got.Next() {
		var id string
		require.NoError(t, got.Scan(&id))
		require.True(t, want[id], "stored a message nobody confirmed: %s", id)
	}
	require.NoError(t, got.Err())

	mq := amqptest.Dial(t)
	for _, id := range ids {
		q, err := amqptest.Inspect(t, mq, rabbit.DLQName(id))
		require.NoError(t, err)
		require.Zero(t, q.Messages, "no good message dead-lettered")
	}
	// Dead letters are archived off the DLQ: an empty DLQ alone proves nothing.
	var archived int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM dead_letters WHERE tenant_id = ANY($1::uuid[])`, ids).Scan(&archived))
	require.Zero(t, archived, "no good message dead-lettered and archived")
}

// publishThroughOutages publishes total messages round-robin over the tenants' queues with
// confirms, a window of 100 every pace, reconnecting and re-sending (same message id)
// whatever was not confirmed.
func publishThroughOutages(ctx context.Context, url string, tenants []string, total int, pace time.Duration, confirmed *sync.Map, sent *atomic.Int64) error {
	var conn *amqp.Connection
	var ch *amqp.Channel
	connect := func() error {
		if conn != nil {
			_ = conn.Close()
		}
		var err error
		if conn, err = amqp.Dial(url); err != nil {
			return err
		}
		if ch, err = conn.Channel(); err != nil {
			return err
		}
		return ch.Confirm(false)
	}
	deadline := time.Now().Add(6 * time.Minute)
	for i := 0; i < total; {
		if time.Now().After(deadline) {
			return fmt.Errorf("published %d of %d before the deadline", i, total)
		}
		if ch == nil || ch.IsClosed() {
			if err := connect(); err != nil {
				time.Sleep(200 * time.Millisecond) // broker down: retry the connection
				continue
			}
		}
		// A window of 100 in flight; the whole window is re-sent if any is not confirmed.
		n := min(100, total-i)
		var dcs []*amqp.DeferredConfirmation
		var msgIDs []string
		for j := range n {
			id := uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(i+j))).String() // stable across re-sends
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", rabbit.QueueName(tenants[(i+j)%len(tenants)]), true, false, amqp.Publishing{
				MessageId: id, DeliveryMode: amqp.Persistent, ContentType: "application/json",
				Body: []byte(fmt.Sprintf(`{"seq":%d}`, i+j)),
			})
			if err != nil {
				break
			}
			dcs = append(dcs, dc)
			msgIDs = append(msgIDs, id)
		}
		ok := len(dcs) == n
		for _, dc := range dcs {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			acked, err := dc.WaitContext(wctx)
			cancel()
			ok = ok && err == nil && acked
		}
		if !ok {
			ch = nil
			continue
		}
		for _, id := range msgIDs {
			confirmed.Store(id, true)
		}
		i += n
		sent.Store(int64(i))
		time.Sleep(pace) // the producers' rate, not a wait for a condition
	}
	if conn != nil {
		_ = conn.Close()
	}
	return nil
}

func pgctl(t *testing.T, action string) {
	t.Helper()
	versions, err := os.ReadDir("/etc/postgresql")
	require.NoError(t, err, "chaos test needs a local Debian PostgreSQL cluster")
	for _, v := range versions {
		run(t, "pg_ctlcluster", "--skip-systemctl-redirect", v.Name(), "main", action, "-m", "fast")
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if name == "pg_ctlcluster" && args[len(args)-3] == "start" {
		args = args[:len(args)-2] // -m applies to stop only
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
}
