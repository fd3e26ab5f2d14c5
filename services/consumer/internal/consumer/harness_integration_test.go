//go:build integration

package consumer

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/health"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/messages"

	"github.com/ThreeDotsLabs/watermill"
)

// env is one test's database, event store and broker connection.
type env struct {
	t    *testing.T
	db   pgtest.DB
	es   *eventstore.Store
	amqp *amqp.Connection
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := pgtest.New(t)
	amqptest.CleanupEventStoreTenants(t, db.Pool) // before any service starts: runs after they stopped
	sqlDB := postgres.OpenDB(db.Pool)
	t.Cleanup(func() { _ = sqlDB.Close() }) // else its connection opener goroutine outlives the test
	return &env{t: t, db: db, es: eventstore.New(sqlDB, watermill.NopLogger{}), amqp: amqptest.Dial(t)}
}

func testLogger() *slog.Logger {
	if os.Getenv("CONSUMER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// serviceAppName is the application_name of the service's database connections.
const serviceAppName = "consumer_under_test"

// startService runs a consumer service against the env until the test ends; opts
// adjust it before it runs.
func (e *env) startService(maxBytes int, opts ...func(*Service)) *Service {
	t := e.t
	t.Helper()
	log := testLogger()
	ctx, cancel := context.WithCancel(context.Background())
	rc := rabbit.NewConn(amqptest.URL(t), "consumer-test", log)
	rcDone := make(chan struct{})
	go func() { defer close(rcDone); _ = rc.Run(ctx) }()
	// The service gets its own pool, tagged so a test can cut exactly its connections.
	u, err := url.Parse(e.db.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", serviceAppName)
	u.RawQuery = q.Encode()
	pool, err := postgres.NewPool(ctx, u.String(), 10)
	require.NoError(t, err)
	db := postgres.OpenDB(pool)
	group := NewGroup()
	sub, err := eventstore.NewSubscriber(db, group, watermill.NopLogger{})
	require.NoError(t, err)
	svc, err := New(Settings{
		Prefetch: 64, Connections: 2, ReconcileInterval: 200 * time.Millisecond,
		MaxBatch: 1000, Flushers: 2, DrainTimeout: 5 * time.Second,
		ReplicaHeartbeat: 100 * time.Millisecond, ReplicaTTL: time.Second,
	}, Deps{
		Log: log, WLog: watermill.NopLogger{}, Pool: pool, DB: db,
		Events: eventstore.New(db, watermill.NopLogger{}), Subscriber: sub, Group: group,
		Rabbit: rc, URL: amqptest.URL(t), Topology: rabbit.DefaultTopology, Ready: health.New(), Registry: prometheus.NewRegistry(),
		MaxMessageBytes: maxBytes,
	})
	require.NoError(t, err)
	for _, o := range opts {
		o(svc)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- svc.Run(ctx) }()
	t.Cleanup(func() {
		stopCtx, stop := context.WithTimeout(context.Background(), 15*time.Second)
		defer stop()
		require.NoError(t, svc.Stop(stopCtx))
		require.NoError(t, <-runDone)
		cancel()
		<-rcDone
		_ = db.Close()
		pool.Close()
	})
	return svc
}

func (e *env) append(tenantID string, version int, ev events.Event) {
	e.t.Helper()
	env, err := events.NewEnvelope(tenantID, version, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now()}, ev)
	require.NoError(e.t, err)
	_, err = e.es.Append(context.Background(), []events.Envelope{env}, nil)
	require.NoError(e.t, err)
}

// createTenant appends TenantCreated for a fresh tenant whose queues are removed at test end.
func (e *env) createTenant(workers int) string {
	e.t.Helper()
	id := uuid.NewString()
	amqptest.CleanupTenant(e.t, id)
	e.append(id, 1, events.TenantCreated{Name: "t-" + id[:8], Workers: workers})
	return id
}

// consumers is the queue's consumer count as RabbitMQ reports it (-1: no queue).
func (e *env) consumers(queue string) int {
	q, err := amqptest.Inspect(e.t, e.amqp, queue)
	if err != nil {
		return -1
	}
	return q.Consumers
}

func (e *env) requireConsumers(tenantID string, n int) {
	e.t.Helper()
	q := rabbit.QueueName(tenantID)
	require.Eventually(e.t, func() bool { return e.consumers(q) == n },
		5*time.Second, 20*time.Millisecond, "queue %s should have %d consumers", q, n)
}

// publisher publishes with confirms.
type publisher struct {
	t  testing.TB
	ch *amqp.Channel
}

func (e *env) publisher() *publisher {
	ch, err := e.amqp.Channel()
	require.NoError(e.t, err)
	require.NoError(e.t, ch.Confirm(false))
	return &publisher{t: e.t, ch: ch}
}

// publish sends each body to the tenant's queue and waits for every confirm.
func (p *publisher) publish(tenantID string, msgs ...amqp.Publishing) {
	p.t.Helper()
	confs := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		m.DeliveryMode = amqp.Persistent
		c, err := p.ch.PublishWithDeferredConfirmWithContext(context.Background(), "", rabbit.QueueName(tenantID), true, false, m)
		require.NoError(p.t, err)
		confs = append(confs, c)
	}
	for _, c := range confs {
		ok, err := c.WaitContext(context.Background())
		require.NoError(p.t, err)
		require.True(p.t, ok, "broker nacked a publish")
	}
}

func jsonMsg(id string, v any) amqp.Publishing {
	b, _ := json.Marshal(v)
	return amqp.Publishing{MessageId: id, ContentType: "application/json", Body: b}
}

// stored returns the tenant's row count and distinct id count.
func (e *env) stored(tenantID string) (rows, distinct int) {
	e.t.Helper()
	err := e.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT id) FROM messages WHERE tenant_id = $1`, tenantID).Scan(&rows, &distinct)
	require.NoError(e.t, err)
	return rows, distinct
}

func (e *env) requireStored(tenantID string, n int) {
	e.t.Helper()
	require.Eventually(e.t, func() bool { rows, _ := e.stored(tenantID); return rows >= n },
		15*time.Second, 20*time.Millisecond, "tenant %s should store %d messages", tenantID, n)
	rows, distinct := e.stored(tenantID)
	require.Equal(e.t, n, rows, "rows")
	require.Equal(e.t, n, distinct, "distinct ids")
}

func (e *env) workersReported(tenantID string) int {
	var n int
	err := e.db.Pool.QueryRow(context.Background(), `SELECT current FROM tenant_workers WHERE tenant_id = $1`, tenantID).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

func (e *env) partitionExists(tenantID string) bool {
	ok, err := messages.PartitionExists(context.Background(), e.db.Pool, tenantID)
	require.NoError(e.t, err)
	var table bool
	require.NoError(e.t, e.db.Pool.QueryRow(context.Background(),
		`SELECT to_regclass($1) IS NOT NULL`, messages.PartitionName(tenantID)).Scan(&table))
	return ok || table
}
