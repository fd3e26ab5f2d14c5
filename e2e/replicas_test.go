//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
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

// TestConsumerReplicasShareTenants runs three consumer binaries over one database: 30
// tenants × 3 workers have exactly 3 consumers each, spread over the three replicas. A
// replica SIGKILLed during a 30,000-message run has its tenants taken over within 15 s
// (REPLICA_TTL 10s by default), and a rolling restart of all three (SIGTERM one at a
// time, a new one started before the next stops) hands tenants over gracefully; every
// confirmed message is stored exactly once throughout.
func TestConsumerReplicasShareTenants(t *testing.T) {
	env := Env(t)
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)
	s := &system{env: env, command: Start(t, "command", env), query: Start(t, "query", env)}
	consumers := []*Proc{Start(t, "consumer", env), Start(t, "consumer", env), Start(t, "consumer", env)}
	s.consumer = consumers[0]
	for _, p := range append([]*Proc{s.command, s.query}, consumers...) {
		p.WaitStatus(t, "/readyz", 200, 30*time.Second)
	}

	const tenantCount, workers = 30, 3
	ids := make([]string, tenantCount)
	for i := range ids {
		ids[i] = createTenant(t, s, workers)
	}
	mq := amqptest.Dial(t)
	requireExactWorkers(t, s, mq, ids, workers, 3, 30*time.Second) // every replica runs a share

	db, err := pgx.Connect(context.Background(), env["DATABASE_URL"])
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close(context.Background()) })

	// SIGKILL one replica while 30,000 messages flow.
	pub := startPublishing(t, mq, ids, 30000, 2*time.Millisecond)
	require.Eventually(t, func() bool { return pub.sent.Load() >= 8000 }, time.Minute, 10*time.Millisecond)
	killed := consumers[1]
	killed.Kill(t)
	killedAt := time.Now()
	requireExactWorkers(t, s, mq, ids, workers, 2, 15*time.Second)
	t.Logf("SIGKILLed replica's tenants running again after %s", time.Since(killedAt).Round(100*time.Millisecond))
	require.NoError(t, pub.wait())
	requireStoredExactlyOnce(t, db, ids, pub.confirmedIDs())

	// The killed replica's replacement joins and takes its share back.
	replacement := Start(t, "consumer", env)
	replacement.WaitStatus(t, "/readyz", 200, 30*time.Second)
	readyAt := time.Now()
	requireExactWorkers(t, s, mq, ids, workers, 3, 15*time.Second)
	t.Logf("a joining replica's share running on it %s after its /readyz", time.Since(readyAt).Round(100*time.Millisecond))

	// Rolling restart of all three while messages flow: each replica is stopped with
	// SIGTERM (its tenants move to the other two once its in-flight messages commit),
	// then a new one starts and takes its share.
	pub = startPublishing(t, mq, ids, 9000, 3*time.Millisecond)
	for _, old := range []*Proc{consumers[0], consumers[2], replacement} {
		stoppedAt := time.Now()
		code, _ := old.Terminate(t, 30*time.Second)
		require.Equal(t, 0, code, old.Output())
		requireExactWorkers(t, s, mq, ids, workers, 2, 15*time.Second)
		t.Logf("SIGTERMed replica's tenants running on the others %s after the signal", time.Since(stoppedAt).Round(100*time.Millisecond))
		next := Start(t, "consumer", env)
		next.WaitStatus(t, "/readyz", 200, 30*time.Second)
		readyAt := time.Now()
		requireExactWorkers(t, s, mq, ids, workers, 3, 15*time.Second)
		t.Logf("a joining replica's share running on it %s after its /readyz", time.Since(readyAt).Round(100*time.Millisecond))
	}
	require.NoError(t, pub.wait())
	requireExactWorkers(t, s, mq, ids, workers, 3, 15*time.Second)
	all := pub.confirmedIDs()
	requireStoredExactlyOnce(t, db, ids, all)
	var total int
	require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE tenant_id = ANY($1::uuid[])`, ids).Scan(&total))
	require.Equal(t, 39000, total, "both runs, each message once")
}

// requireExactWorkers waits until every tenant's queue has exactly workers consumers and
// the query API shows that count with one owner.
// With wantOwners > 0 it also waits until the tenants are spread over that many owners.
func requireExactWorkers(t *testing.T, s *system, mq *amqp.Connection, ids []string, workers, wantOwners int, within time.Duration) {
	t.Helper()
	var last string
	require.Eventually(t, func() bool {
		owners := map[string]int{}
		for _, id := range ids {
			q, err := amqptest.Inspect(t, mq, rabbit.QueueName(id))
			if err != nil || q.Consumers != workers {
				last = fmt.Sprintf("queue of %s: %d consumers (err %v)", id, q.Consumers, err)
				return false
			}
			code, _, body := jsonCall(t, "GET", s.query.URL()+"/tenants/"+id, nil, nil)
			if code != 200 {
				last = fmt.Sprintf("GET tenant %s: %d", id, code)
				return false
			}
			w := body["workers"].(map[string]any)
			owner, _ := w["owner"].(string)
			replicas, _ := w["replicas"].([]any)
			if int(w["current"].(float64)) != workers || owner == "" || len(replicas) != 1 || replicas[0] != owner {
				last = fmt.Sprintf("tenant %s workers %v", id, w)
				return false
			}
			owners[owner]++
		}
		if wantOwners > 0 && len(owners) != wantOwners {
			last = fmt.Sprintf("owners %v, want %d of them", owners, wantOwners)
			return false
		}
		return true
	}, within, 100*time.Millisecond, "every tenant runs exactly %d workers on one owner; last: %s", workers, &last)
}

// publisher publishes total messages round-robin over the tenants' queues with
// confirms, windows of 100 with a pause between, and keeps the confirmed ids.
type publisher struct {
	sent      atomic.Int64
	mu        sync.Mutex
	confirmed []string
	done      chan error
}

func startPublishing(t *testing.T, conn *amqp.Connection, tenants []string, total int, pause time.Duration) *publisher {
	t.Helper()
	p := &publisher{done: make(chan error, 1)}
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(false))
	go func() {
		defer ch.Close()
		p.done <- func() error {
			for i := 0; i < total; i += 100 {
				var dcs []*amqp.DeferredConfirmation
				var msgIDs []string
				for j := i; j < min(i+100, total); j++ {
					id := uuid.NewString()
					dc, err := ch.PublishWithDeferredConfirm("", rabbit.QueueName(tenants[j%len(tenants)]), true, false, amqp.Publishing{
						MessageId: id, DeliveryMode: amqp.Persistent, ContentType: "application/json",
						Timestamp: time.Now(), Body: []byte(fmt.Sprintf(`{"seq":%d}`, j)),
					})
					if err != nil {
						return fmt.Errorf("publish %d: %w", j, err)
					}
					dcs, msgIDs = append(dcs, dc), append(msgIDs, id)
				}
				for _, dc := range dcs {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					ok, err := dc.WaitContext(ctx)
					cancel()
					if err != nil {
						return fmt.Errorf("confirm: %w", err)
					}
					if !ok {
						return errors.New("the broker nacked a publish")
					}
				}
				p.mu.Lock()
				p.confirmed = append(p.confirmed, msgIDs...)
				p.mu.Unlock()
				p.sent.Add(int64(len(msgIDs)))
				time.Sleep(pause) // the producers' pace, so the run spans what the test does
			}
			return nil
		}()
	}()
	return p
}

func (p *publisher) wait() error { return <-p.done }

func (p *publisher) confirmedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.confirmed...)
}

// requireStoredExactlyOnce waits until every confirmed id is stored and checks none is
// stored twice.
func requireStoredExactlyOnce(t *testing.T, db *pgx.Conn, tenants, confirmed []string) {
	t.Helper()
	var stored, distinct int
	require.Eventually(t, func() bool {
		err := db.QueryRow(context.Background(),
			`SELECT count(*), count(DISTINCT id) FROM messages WHERE tenant_id = ANY($1::uuid[]) AND id = ANY($2::uuid[])`,
			tenants, confirmed).Scan(&stored, &distinct)
		return err == nil && distinct == len(confirmed)
	}, 2*time.Minute, 200*time.Millisecond, "stored %d of %d confirmed messages", &distinct, len(confirmed))
	require.Equal(t, distinct, stored, "no message stored twice")
	var dups int
	require.NoError(t, db.QueryRow(context.Background(),
		`SELECT count(*) FROM (SELECT id FROM messages WHERE tenant_id = ANY($1::uuid[]) GROUP BY tenant_id, id HAVING count(*) > 1) d`, tenants).Scan(&dups))
	require.Zero(t, dups)
}
