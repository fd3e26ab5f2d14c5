//go:build integration

package consumer

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/rabbit"
)

func TestSpawnOnCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(3)

	e.requireConsumers(id, 3)
	require.True(t, e.partitionExists(id))
	require.Eventually(t, func() bool { return e.workersReported(id) == 3 }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, 3.0, testutil.ToFloat64(svc.m.workers.WithLabelValues(id)))

	pub := e.publisher()
	var msgs []amqp.Publishing
	for i := range 50 {
		msgs = append(msgs, jsonMsg(uuid.NewString(), map[string]int{"n": i}))
	}
	pub.publish(id, msgs...)
	e.requireStored(id, 50)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(svc.m.processed.WithLabelValues(id, OutcomeStored)) == 50
	}, 5*time.Second, 20*time.Millisecond)
}

// TestResizeWhileFlowing resizes 3→5→1 while a producer keeps publishing: the queue
// shows exactly that many consumers each time, and every message is stored once.
func TestResizeWhileFlowing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	id := e.createTenant(3)
	e.requireConsumers(id, 3)

	var published atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pub := e.publisher()
		for {
			select {
			case <-stop:
				return
			default:
			}
			batch := make([]amqp.Publishing, 50)
			for i := range batch {
				batch[i] = jsonMsg(uuid.NewString(), map[string]string{"k": "v"})
			}
			pub.publish(id, batch...)
			published.Add(int64(len(batch)))
		}
	}()

	require.Eventually(t, func() bool { return published.Load() >= 200 }, 10*time.Second, 10*time.Millisecond)
	e.append(id, 2, events.TenantConcurrencyChanged{Workers: 5, PreviousWorkers: 3})
	e.requireConsumers(id, 5)
	require.Eventually(t, func() bool { return e.workersReported(id) == 5 }, 5*time.Second, 20*time.Millisecond)
	mark := published.Load()
	require.Eventually(t, func() bool { return published.Load() >= mark+200 }, 10*time.Second, 10*time.Millisecond)
	e.append(id, 3, events.TenantConcurrencyChanged{Workers: 1, PreviousWorkers: 5})
	e.requireConsumers(id, 1)
	mark = published.Load()
	require.Eventually(t, func() bool { return published.Load() >= mark+200 }, 10*time.Second, 10*time.Millisecond)
	close(stop)
	wg.Wait()

	e.requireStored(id, int(published.Load()))
	require.Equal(t, 1, e.consumers(rabbit.QueueName(id)), "still exactly one consumer")
	require.Equal(t, 1, e.workersReported(id))
	t.Logf("published and stored %d messages across resizes", published.Load())
}

func TestDeleteRemovesQueueAndPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(2)
	e.requireConsumers(id, 2)
	e.publisher().publish(id, jsonMsg(uuid.NewString(), map[string]int{"a": 1}))
	e.requireStored(id, 1)

	e.append(id, 2, events.TenantDeleted{})
	require.Eventually(t, func() bool {
		return e.consumers(rabbit.QueueName(id)) == -1 && e.consumers(rabbit.DLQName(id)) == -1
	}, 5*time.Second, 20*time.Millisecond, "queue and DLQ deleted")
	require.Eventually(t, func() bool { return !e.partitionExists(id) }, 5*time.Second, 20*time.Millisecond)
	// The report row goes last, after the partition: poll for it too.
	require.Eventually(t, func() bool { return e.workersReported(id) == -1 }, 5*time.Second, 20*time.Millisecond, "worker report removed")
	require.Equal(t, 0, testutil.CollectAndCount(svc.m.workers), "gauge forgotten")
}

func TestRedeliveredMessageStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(2)
	e.requireConsumers(id, 2)

	same := uuid.NewString()
	pub := e.publisher()
	pub.publish(id,
		jsonMsg(same, map[string]int{"try": 1}),
		jsonMsg("order-42", map[string]int{"try": 1}),
	)
	e.requireStored(id, 2)
	pub.publish(id,
		jsonMsg(same, map[string]int{"try": 2}),
		jsonMsg("order-42", map[string]int{"try": 2}),
	)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(svc.m.processed.WithLabelValues(id, OutcomeDuplicate)) == 2
	}, 5*time.Second, 20*time.Millisecond)
	e.requireStored(id, 2)

	var n int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM messages WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND payload->>'try' = '1'`,
		id, []string{same, uuid.NewSHA1(uuid.MustParse(id), []byte("order-42")).String()}).Scan(&n))
	require.Equal(t, 2, n, "first copy kept, ids as MessageID derives them")
}

func TestPoisonMessageDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(64)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)

	pub := e.publisher()
	pub.publish(id,
		amqp.Publishing{MessageId: "bad-json", Body: []byte(`{"broken":`)},
		amqp.Publishing{MessageId: "too-big", Body: []byte(`{"pad":"` + strings.Repeat("x", 100) + `"}`)},
		amqp.Publishing{MessageId: "nul", Body: []byte(`{"s":"\u0000"}`)},
		amqp.Publishing{MessageId: "latin1", Body: []byte("{\"s\":\"\xe9\"}")},
		jsonMsg("good", map[string]int{"ok": 1}),
	)
	e.requireStored(id, 1)

	// Archived from the DLQ into Postgres within 5 s, with their reasons.
	reasons := e.requireArchived(id, 4, 5*time.Second)
	require.Equal(t, "invalid_json", reasons["bad-json"].reason)
	require.Equal(t, "too_large", reasons["too-big"].reason)
	// Refused before the database would refuse them (the HTTP ingest path applies the same check).
	require.Contains(t, reasons["nul"].detail, `\u0000`)
	require.Contains(t, reasons["latin1"].detail, "UTF-8")
	require.Equal(t, []byte(`{"broken":`), reasons["bad-json"].body, "the raw body is kept")
	require.Equal(t, 1, e.consumers(rabbit.QueueName(id)), "the worker survived")
}

// Bodies jsonb refuses (lone surrogates, numbers beyond numeric) and bodies whose numbers
// print huge are refused up front by the ingest rule, never sent to the database (where
// one bad row costs the whole group commit a bisecting retry) and never stored.
func TestUnstorableJSONDeadLetteredUpFront(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)

	bad := map[string]string{
		"lone-high": `{"s":"\ud800"}`,
		"lone-low":  `{"s":"\udc00x"}`,
		"huge":      `{"n":1e131072}`,
		"tiny":      `{"n":1e-16384}`,
		"expands":   `{"n":[1e131071,1e131071,1e131071]}`,
	}
	pub := e.publisher()
	for mid, body := range bad {
		pub.publish(id, amqp.Publishing{MessageId: mid, Body: []byte(body)})
	}
	pub.publish(id, amqp.Publishing{MessageId: "pair", Body: []byte(`{"s":"\ud83d\ude00","n":1e300}`)})
	e.requireStored(id, 1)

	reasons := e.requireArchived(id, len(bad), 10*time.Second)
	for mid := range bad {
		require.Equal(t, "invalid_json", reasons[mid].reason, mid)
	}
	require.Contains(t, reasons["lone-high"].detail, "surrogate")
	require.Contains(t, reasons["huge"].detail, "number")
	require.Contains(t, reasons["expands"].detail, "grow")
	rows, _ := e.stored(id)
	require.Equal(t, 1, rows, "only the valid surrogate pair and number are stored")
}

// TestRestartRebuildsFromEvents starts the service on an existing history: it must run
// exactly the live tenants with their latest worker counts, skip unknown events, and
// clean up tenants deleted while it was down.
func TestRestartRebuildsFromEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resized := e.createTenant(2)
	e.append(resized, 2, events.TenantConcurrencyChanged{Workers: 4, PreviousWorkers: 2})
	unknown, err := events.NewEnvelope(resized, 3, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now()}, events.TenantCreated{})
	require.NoError(t, err)
	unknown.Type = "tenant.renamed.v9"
	_, err = e.es.Append(context.Background(), []events.Envelope{unknown}, nil)
	require.NoError(t, err)
	gone := e.createTenant(1)
	e.append(gone, 2, events.TenantDeleted{})
	// The gone tenant's queue exists from an earlier run.
	ch, err := e.amqp.Channel()
	require.NoError(t, err)
	require.NoError(t, rabbit.DefaultTopology.DeclareTenant(ch, gone))
	_ = ch.Close()

	svc := e.startService(1 << 16)
	e.requireConsumers(resized, 4)
	require.Eventually(t, func() bool { return e.consumers(rabbit.QueueName(gone)) == -1 }, 5*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, testutil.ToFloat64(svc.m.eventsSkipped.WithLabelValues("unknown_type")), 1.0)

	// Later events still apply after the unknown one.
	e.append(resized, 4, events.TenantConcurrencyChanged{Workers: 2, PreviousWorkers: 4})
	e.requireConsumers(resized, 2)
}

// A rate limit change is an event the consumer knows and ignores: in the start-up replay
// and live, it is neither counted as unknown or malformed nor does it disturb the pool
// or the events after it.
func TestRateLimitEventsLeavePoolsAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createTenant(2)
	e.append(id, 2, events.TenantRateLimitChanged{PerSecond: 10, Burst: 20})

	svc := e.startService(1 << 16)
	e.requireConsumers(id, 2)
	e.append(id, 3, events.TenantRateLimitChanged{PerSecond: 0, Burst: 0})
	e.append(id, 4, events.TenantConcurrencyChanged{Workers: 3, PreviousWorkers: 2})
	e.requireConsumers(id, 3)

	require.Zero(t, testutil.ToFloat64(svc.m.eventsSkipped.WithLabelValues("unknown_type")))
	require.Zero(t, testutil.ToFloat64(svc.m.eventsSkipped.WithLabelValues("malformed")))
	got, ok := svc.state.Get(id)
	require.True(t, ok)
	require.Equal(t, 4, got.Version)
	require.Equal(t, 3, got.Workers)
}

// Tenants beyond one pass's set-up batch are set up on the following passes: every one
// of them consumes, however many were created at once.
func TestManyNewTenantsAreSetUpPassByPass(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for range 7 {
		ids = append(ids, e.createTenant(1))
	}
	e.startService(1<<16, func(s *Service) { s.setupPerPass = 2 })
	for _, id := range ids {
		e.requireConsumers(id, 1)
	}
}
