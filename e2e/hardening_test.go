//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// folded is a tenant's state rebuilt from its stream in the event store.
type folded struct {
	status  string // active, paused, deleted
	workers int
	version int
}

// storedStreams reads each tenant's events straight from the event store, checks the
// stream invariants (versions 1..n without gaps, nothing after tenant.deleted.v1) and
// folds them.
func storedStreams(t *testing.T, db *pgx.Conn, ids []string) map[string]folded {
	t.Helper()
	out := map[string]folded{}
	for _, id := range ids {
		rows, err := db.Query(context.Background(), `SELECT version, event_type, payload -> 'data' FROM event_store WHERE stream_id = $1 ORDER BY version`, id)
		require.NoError(t, err)
		var f folded
		for rows.Next() {
			var version int
			var typ string
			var data json.RawMessage
			require.NoError(t, rows.Scan(&version, &typ, &data))
			require.Equal(t, f.version+1, version, "tenant %s: versions without gaps", id)
			require.NotEqual(t, "deleted", f.status, "tenant %s: %s after tenant.deleted.v1", id, typ)
			f.version = version
			var w struct{ Workers int }
			require.NoError(t, json.Unmarshal(data, &w))
			switch typ {
			case "tenant.created.v1":
				f.status, f.workers = "active", w.Workers
			case "tenant.concurrency_changed.v1":
				f.workers = w.Workers
			case "tenant.paused.v1":
				f.status = "paused"
			case "tenant.resumed.v1":
				f.status = "active"
			case "tenant.deleted.v1":
				f.status = "deleted"
			default:
				t.Fatalf("tenant %s: unexpected %s in a storm of lifecycle commands", id, typ)
			}
		}
		require.NoError(t, rows.Err())
		require.Positive(t, f.version, "tenant %s has events", id)
		out[id] = f
	}
	return out
}

// A storm of 100 concurrent commands over 10 tenants (their creates included): every
// answer is a documented one, each stream stays gap-free and ends at its delete, the
// query side shows each stream's fold, and within 5 s the consumer runs exactly the
// final desired workers (none while paused, no queue once deleted).
func TestCommandStormConverges(t *testing.T) {
	s := startSystem(t)
	conn := amqptest.Dial(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	const tenants, requests = 10, 100
	type op struct {
		tenant        int
		method, path  string
		body          any
		allowed       []int
		createWorkers int
	}
	var ops []op
	for i := range tenants {
		ops = append(ops, op{tenant: i, createWorkers: 1 + rng.IntN(3)})
	}
	for len(ops) < requests {
		o := op{tenant: rng.IntN(tenants)}
		switch n := rng.IntN(20); {
		case n < 8:
			o.method, o.path, o.body = "PUT", "/config/concurrency", map[string]any{"workers": 1 + rng.IntN(4)}
			o.allowed = []int{200, 404, 409}
		case n < 13:
			o.method, o.path, o.allowed = "POST", "/pause", []int{200, 404, 409}
		case n < 18:
			o.method, o.path, o.allowed = "POST", "/resume", []int{200, 404, 409}
		default:
			o.method, o.path, o.allowed = "DELETE", "", []int{202, 404, 409}
		}
		ops = append(ops, o)
	}
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })

	// Each command waits only for its tenant's create; all 100 are otherwise in flight
	// together.
	ids := make([]string, tenants)
	created := make([]chan struct{}, tenants)
	for i := range created {
		created[i] = make(chan struct{})
	}
	type answer struct {
		o    op
		code int
		body map[string]any
	}
	answers := make(chan answer, requests)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, o := range ops {
		wg.Go(func() {
			<-start
			if o.path == "" && o.method == "" {
				// Deferred: a failed call ends this goroutine, and the tenant's other
				// commands must not wait for it forever.
				defer close(created[o.tenant])
				code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants", map[string]any{"name": "storm-" + uuid.NewString()[:8], "workers": o.createWorkers}, nil)
				if code == 201 {
					ids[o.tenant] = body["id"].(string)
				}
				answers <- answer{o, code, body}
				return
			}
			<-created[o.tenant]
			if ids[o.tenant] == "" {
				return // its create failed, reported below
			}
			code, _, body := jsonCall(t, o.method, s.command.URL()+"/tenants/"+ids[o.tenant]+o.path, o.body, nil)
			answers <- answer{o, code, body}
		})
	}
	close(start)
	wg.Wait()
	close(answers)
	for _, id := range ids {
		if id != "" {
			amqptest.CleanupTenant(t, id)
		}
	}
	counts := map[string]int{}
	for a := range answers {
		if a.o.method == "" {
			require.Equal(t, 201, a.code, "create: %v", a.body)
			continue
		}
		require.Contains(t, a.o.allowed, a.code, "%s %s: %v", a.o.method, a.o.path, a.body)
		if a.code == 409 {
			require.Contains(t, []any{"concurrent_modification"}, a.body["code"], "%s %s: %v", a.o.method, a.o.path, a.body)
		}
		counts[fmt.Sprintf("%s%s %d", a.o.method, a.o.path, a.code)]++
	}
	t.Logf("answers: %v", counts)
	stormEnd := time.Now()

	db, err := pgx.Connect(context.Background(), s.env["DATABASE_URL"])
	require.NoError(t, err)
	defer db.Close(context.Background())
	final := storedStreams(t, db, ids)

	// The consumer converges within 5 s of the last answer.
	converged := func() error {
		for _, id := range ids {
			f := final[id]
			q, err := amqptest.Inspect(t, conn, rabbit.QueueName(id))
			switch {
			case f.status == "deleted":
				if err == nil {
					return fmt.Errorf("%s: deleted, but its queue still exists", id)
				}
			case err != nil:
				return fmt.Errorf("%s: %w", id, err)
			case f.status == "paused" && q.Consumers != 0:
				return fmt.Errorf("%s: paused, %d consumers", id, q.Consumers)
			case f.status == "active" && q.Consumers != f.workers:
				return fmt.Errorf("%s: %d consumers, want %d", id, q.Consumers, f.workers)
			}
		}
		return nil
	}
	var last error
	for time.Since(stormEnd) < 5*time.Second {
		if last = converged(); last == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, last, "consumer converged within 5 s")
	t.Logf("consumer converged %s after the storm", time.Since(stormEnd).Round(time.Millisecond))

	// The query side shows each fold (it may lag; poll briefly).
	shows := func(id string) error {
		f := final[id]
		code, _, v := jsonCall(t, "GET", s.query.URL()+"/tenants/"+id, nil, nil)
		if f.status == "deleted" {
			if code != 404 {
				return fmt.Errorf("%s: deleted, query answers %d", id, code)
			}
			return nil
		}
		w, _ := v["workers"].(map[string]any)
		if code != 200 || v["status"] != f.status || w == nil || w["desired"] != float64(f.workers) || v["version"] != float64(f.version) {
			return fmt.Errorf("%s: query shows %d %v, event store folds to %+v", id, code, v, f)
		}
		return nil
	}
	for _, id := range ids {
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if last = shows(id); last == nil {
				break
			}
		}
		require.NoError(t, last, "the query side shows the event store's state")
	}
	// Nothing more was recorded while the system settled.
	require.Equal(t, final, storedStreams(t, db, ids))
}

// Deleting a tenant while 10,000 of its messages are in flight (a few of them poison,
// so dead letters are being archived too) leaves nothing of it behind: no stored
// messages, partition, dead letters, read-model rows, queues or exchange, and nothing
// comes back over several reconcile passes (a late ack, store or archive must not
// recreate any of it).
func TestDeleteWithMessagesInFlight(t *testing.T) {
	env := Env(t)
	env["RECONCILE_INTERVAL"] = "500ms" // several passes fit in the stays-gone window below
	s := startSystemWith(t, env)
	conn := amqptest.Dial(t)
	id := createTenant(t, s, 4)
	db, err := pgx.Connect(context.Background(), s.env["DATABASE_URL"])
	require.NoError(t, err)
	defer db.Close(context.Background())

	// Paused while publishing, so that everything is still queued when the workers start.
	code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/pause", nil, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Eventually(t, func() bool {
		c, err := consumers(t, conn, rabbit.QueueName(id))
		return err == nil && c == 0
	}, 5*time.Second, 50*time.Millisecond)
	const total = 10000
	publishConfirmed(t, conn, rabbit.QueueName(id), total, func(i int) string {
		if i%500 == 0 {
			return `{"poison":` // dead-lettered and archived
		}
		return fmt.Sprintf(`{"n":%d}`, i)
	})

	count := func(query string) int {
		var n int
		require.NoError(t, db.QueryRow(context.Background(), query, id).Scan(&n))
		return n
	}
	code, _, body = jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/resume", nil, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM messages WHERE tenant_id = $1`) > 0 && count(`SELECT count(*) FROM dead_letters WHERE tenant_id = $1`) > 0
	}, 15*time.Second, 10*time.Millisecond, "the consumer is storing and archiving")
	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+id, nil, nil)
	require.Equal(t, 202, code, "%v", body)
	t.Logf("deleted with %d of %d stored", count(`SELECT count(*) FROM messages WHERE tenant_id = $1`), total)

	leftovers := func() []string {
		var left []string
		for what, query := range map[string]string{
			"messages":     `SELECT count(*) FROM messages WHERE tenant_id = $1`,
			"partition":    `SELECT count(*) FROM pg_class WHERE relname = 'messages_' || replace($1::text, '-', '')`,
			"dead letters": `SELECT count(*) FROM dead_letters WHERE tenant_id = $1`,
			// The read model keeps a deleted tombstone (so a late event cannot bring the
			// tenant back); anything else is a leftover.
			"tenants row": `SELECT count(*) FROM tenants WHERE id = $1 AND status <> 'deleted'`,
			"workers row": `SELECT count(*) FROM tenant_workers WHERE tenant_id = $1`,
		} {
			if n := count(query); n > 0 {
				left = append(left, fmt.Sprintf("%s: %d", what, n))
			}
		}
		for _, q := range []string{rabbit.QueueName(id), rabbit.DLQName(id)} {
			if _, err := amqptest.Inspect(t, conn, q); err == nil {
				left = append(left, "queue "+q)
			}
		}
		if exchangeExists(t, conn, rabbit.ExchangeName(id)) {
			left = append(left, "exchange "+rabbit.ExchangeName(id))
		}
		slices.Sort(left)
		return left
	}
	left := leftovers()
	for end := time.Now().Add(30 * time.Second); len(left) > 0 && time.Now().Before(end); left = leftovers() {
		time.Sleep(100 * time.Millisecond)
	}
	require.Empty(t, left, "left behind 30 s after the delete")
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		require.Empty(t, leftovers(), "recreated after the delete")
	}
}

// publishConfirmed publishes n bodies to the queue through the default exchange with
// persistent delivery and publisher confirms, a window of confirms in flight at once.
func publishConfirmed(t *testing.T, conn *amqp.Connection, queue string, n int, body func(i int) string) {
	t.Helper()
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, ch.Confirm(false))
	const window = 500
	var pending []*amqp.DeferredConfirmation
	wait := func() {
		for _, dc := range pending {
			ok, err := dc.WaitContext(context.Background())
			require.NoError(t, err)
			require.True(t, ok, "broker nacked a publish")
		}
		pending = pending[:0]
	}
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirm("", queue, true, false, amqp.Publishing{
			MessageId: uuid.NewString(), DeliveryMode: amqp.Persistent, ContentType: "application/json",
			Timestamp: time.Now(), Body: []byte(body(i)),
		})
		require.NoError(t, err)
		if pending = append(pending, dc); len(pending) == window {
			wait()
		}
	}
	wait()
}

// exchangeExists passively declares the exchange on a throwaway channel (a missing one
// closes the channel).
func exchangeExists(t *testing.T, conn *amqp.Connection, name string) bool {
	t.Helper()
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	return ch.ExchangeDeclarePassive(name, "fanout", true, false, false, false, nil) == nil
}
