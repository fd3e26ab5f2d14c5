//go:build integration

package consumer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/msgid"
	"github.com/multitenant/mtm/platform/rabbit"
)

// archivedRow is one dead_letters row as a test reads it.
type archivedRow struct {
	id                  uuid.UUID
	reason, detail      string
	status              string
	deaths              int
	body                []byte
	headers             map[string]any
	first, last         time.Time
	messageID, deathKey string
}

// archived returns the tenant's dead_letters rows by message_id.
func (e *env) archived(tenantID string) map[string]archivedRow {
	e.t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), `
		SELECT id, message_id, reason, reason_detail, status, deaths, body, headers::text,
		       first_dead_lettered_at, last_dead_lettered_at, death_key
		FROM dead_letters WHERE tenant_id = $1`, tenantID)
	require.NoError(e.t, err)
	defer rows.Close()
	out := map[string]archivedRow{}
	for rows.Next() {
		var r archivedRow
		var headers string
		require.NoError(e.t, rows.Scan(&r.id, &r.messageID, &r.reason, &r.detail, &r.status, &r.deaths, &r.body, &headers, &r.first, &r.last, &r.deathKey))
		require.NoError(e.t, json.Unmarshal([]byte(headers), &r.headers))
		out[r.messageID] = r
	}
	require.NoError(e.t, rows.Err())
	return out
}

// requireArchived waits until the tenant has n archived dead letters and its DLQ is
// empty (everything archived was acked), and returns them by message_id.
func (e *env) requireArchived(tenantID string, n int, within time.Duration) map[string]archivedRow {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return len(e.archived(tenantID)) >= n && e.dlqMessages(tenantID) == 0 },
		within, 20*time.Millisecond, "tenant %s should archive %d dead letters", tenantID, n)
	got := e.archived(tenantID)
	require.Len(e.t, got, n)
	return got
}

// publishDLQ puts messages straight into the tenant's DLQ, as a dead-letterer would.
func (e *env) publishDLQ(tenantID string, msgs ...amqp.Publishing) {
	e.t.Helper()
	p := e.publisher()
	defer p.ch.Close()
	for _, m := range msgs {
		m.DeliveryMode = amqp.Persistent
		c, err := p.ch.PublishWithDeferredConfirmWithContext(context.Background(), rabbit.DeadLetterExchange, rabbit.DLQName(tenantID), true, false, m)
		require.NoError(e.t, err)
		ok, err := c.WaitContext(context.Background())
		require.NoError(e.t, err)
		require.True(e.t, ok)
	}
}

func ourDeadLetter(messageID, deathID string, body string) amqp.Publishing {
	return amqp.Publishing{MessageId: messageID, Body: []byte(body), Headers: amqp.Table{
		rabbit.HeaderDeadLetterReason: "invalid_json: unexpected end of JSON input",
		headerDeadLetterID:            deathID,
	}}
}

// A poison message is in the archive with its reason within 5 s (and acked off the
// DLQ); one without a message_id gets a fresh one, and its row is keyed by it; the
// pending gauge follows from Postgres.
func TestPoisonArchivedWithin5s(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1 << 16)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)

	start := time.Now()
	e.publisher().publish(id,
		amqp.Publishing{MessageId: "poison-1", Body: []byte(`{"broken":`)},
		amqp.Publishing{Body: []byte(`not json`)},
	)
	got := e.requireArchived(id, 2, 5*time.Second)
	t.Logf("archived 2 dead letters %s after publishing", time.Since(start))
	tenant := uuid.MustParse(id)
	p := got["poison-1"]
	wantID, _ := msgid.FromMessageID(tenant, "poison-1")
	require.Equal(t, wantID, p.id, "the id the message would be stored under")
	require.Equal(t, "invalid_json", p.reason)
	require.NotEmpty(t, p.detail)
	require.Equal(t, "pending", p.status)
	require.Equal(t, 1, p.deaths)
	require.Equal(t, rabbit.QueueName(id), p.headers["x-original-queue"])
	delete(got, "poison-1")
	for mid, r := range got {
		require.Equal(t, mid, r.id.String(), "a message without message_id is given a UUID, used as its id")
		require.Equal(t, []byte("not json"), r.body)
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(svc.m.deadLettersPending.WithLabelValues(id)) == 2 },
		5*time.Second, 20*time.Millisecond, "dead_letters_pending sampled from Postgres")
}

// The quorum queue's own dead letter (over the delivery limit) is archived with the
// broker's reason.
func TestDeliveryLimitDeadLetterArchived(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)
	e.append(id, 2, events.TenantPaused{}) // keep the service's workers off the queue
	e.requireConsumers(id, 0)

	e.publisher().publish(id, jsonMsg("limited", map[string]int{"n": 1}))
	ch, err := e.amqp.Channel()
	require.NoError(t, err)
	defer ch.Close()
	for range rabbit.DeliveryLimit + 5 {
		d, ok, err := ch.Get(rabbit.QueueName(id), false)
		require.NoError(t, err)
		if !ok {
			break
		}
		require.NoError(t, d.Nack(false, true))
	}
	r := e.requireArchived(id, 1, 10*time.Second)["limited"]
	require.Equal(t, "delivery_limit", r.reason)
	require.Equal(t, "from "+rabbit.QueueName(id), r.detail)
	require.Contains(t, r.headers, "x-death")
	require.JSONEq(t, `{"n":1}`, string(r.body))
}

// The same dead-lettering seen twice (a DLQ delivery archived again after a crash
// before its ack) counts once; a new death of the same message after a redrive
// raises deaths and makes it pending again.
func TestArchiveCountsEachDeathOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	id := e.createTenant(1)
	e.requireConsumers(id, 1)

	e.publishDLQ(id, ourDeadLetter("m-1", "death-1", `{"a":`), ourDeadLetter("m-1", "death-1", `{"a":`))
	r := e.requireArchived(id, 1, 5*time.Second)["m-1"]
	require.Equal(t, 1, r.deaths)

	_, err := e.db.Pool.Exec(context.Background(), `UPDATE dead_letters SET status = 'redriven' WHERE tenant_id = $1`, id)
	require.NoError(t, err)
	e.publishDLQ(id, ourDeadLetter("m-1", "death-2", `{"b":`))
	require.Eventually(t, func() bool { return e.archived(id)["m-1"].deaths == 2 }, 5*time.Second, 20*time.Millisecond)
	r2 := e.archived(id)["m-1"]
	require.Equal(t, "pending", r2.status)
	require.Equal(t, []byte(`{"b":`), r2.body)
	require.Equal(t, r.first, r2.first)
	require.False(t, r2.last.Before(r.last))

	// The same death again: nothing changes.
	e.publishDLQ(id, ourDeadLetter("m-1", "death-2", `{"b":`))
	require.Eventually(t, func() bool { return e.dlqMessages(id) == 0 }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, 2, e.archived(id)["m-1"].deaths)
}

// Hostile headers (NUL, invalid UTF-8, binary, nesting, a huge value) and a huge body
// do not wedge a tenant's archive, and another tenant's archiving goes on.
func TestArchiveSurvivesHostileHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	a, b := e.createTenant(1), e.createTenant(1)
	e.requireConsumers(a, 1)
	e.requireConsumers(b, 1)

	big := strings.Repeat("b", 2<<20)
	e.publishDLQ(a,
		amqp.Publishing{MessageId: "nul\x00id", Body: []byte{0, 1, 2}, Headers: amqp.Table{
			rabbit.HeaderDeadLetterReason: "invalid_json: \x00\xff",
			headerDeadLetterID:            "k\x00",
			"nul":                         "a\x00b",
			"latin1":                      "caf\xe9",
			"bin":                         []byte{0, 0xff},
			"nested":                      amqp.Table{"n\x00": []any{"\x00", amqp.Table{"t": time.Now()}}},
			"huge":                        strings.Repeat("h", 100<<10),
		}},
		amqp.Publishing{MessageId: "big-body", Body: []byte(big), Headers: amqp.Table{rabbit.HeaderDeadLetterReason: "too_large: big", headerDeadLetterID: "k2"}},
	)
	e.publishDLQ(b, ourDeadLetter("fine", "k", `{"x":`))

	require.Equal(t, "invalid_json", e.requireArchived(b, 1, 5*time.Second)["fine"].reason)
	got := e.requireArchived(a, 2, 10*time.Second)
	h := got["nul\uFFFDid"]
	require.Equal(t, "a\uFFFDb", h.headers["nul"])
	require.Equal(t, "caf\uFFFD", h.headers["latin1"])
	require.Equal(t, "AP8=", h.headers["bin"])
	require.Equal(t, true, h.headers[headersTruncatedKey], "the huge header is left out, and that is said")
	require.Equal(t, []byte{0, 1, 2}, h.body)
	require.Len(t, got["big-body"].body, len(big), "the whole body is kept")
}

// A tenant whose archive cannot commit (its row locked by a long transaction here)
// holds up only itself: another tenant's dead letters are archived meanwhile, and the
// blocked one lands once the lock goes.
func TestBlockedTenantDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startService(1 << 16)
	a, b := e.createTenant(1), e.createTenant(1)
	e.requireConsumers(a, 1)
	e.requireConsumers(b, 1)
	e.publishDLQ(a, ourDeadLetter("m-1", "death-1", `{`))
	e.requireArchived(a, 1, 5*time.Second)

	ctx := context.Background()
	tx, err := e.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT 1 FROM dead_letters WHERE tenant_id = $1 FOR UPDATE`, a)
	require.NoError(t, err)
	e.publishDLQ(a, ourDeadLetter("m-1", "death-2", `{`))

	e.publishDLQ(b, ourDeadLetter("b-1", "death-1", `{`))
	e.requireArchived(b, 1, 5*time.Second)
	require.Equal(t, 1, e.archived(a)["m-1"].deaths, "A's new death waits for the lock")

	require.NoError(t, tx.Rollback(ctx))
	require.Eventually(t, func() bool { return e.archived(a)["m-1"].deaths == 2 }, 10*time.Second, 20*time.Millisecond)
}
