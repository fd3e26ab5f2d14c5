//go:build integration

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// TestSIGKILLWhileArchivingDeadLetters fills a tenant's DLQ with 1,000 dead letters
// while no consumer runs, starts the consumer, kills it with SIGKILL as soon as the
// archive has some of them (mid-pass: some fetched and not committed, or committed and
// not acked), and starts it again: every dead letter is archived exactly once (1,000
// rows, each counted as one death) and the DLQ ends empty.
func TestSIGKILLWhileArchivingDeadLetters(t *testing.T) {
	const total = 1000
	env := Env(t)
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)
	command := Start(t, "command", env)
	command.WaitStatus(t, "/readyz", 200, 30*time.Second)
	consumer := Start(t, "consumer", env)
	consumer.WaitStatus(t, "/readyz", 200, 30*time.Second)

	code, _, body := jsonCall(t, "POST", command.URL()+"/tenants", map[string]any{"name": "archive-" + uuid.NewString()[:8], "workers": 1}, nil)
	require.Equal(t, 201, code, "%v", body)
	id := body["id"].(string)
	amqptest.CleanupTenant(t, id)
	conn := amqptest.Dial(t)
	require.Eventually(t, func() bool { n, err := consumers(t, conn, rabbit.QueueName(id)); return err == nil && n == 1 },
		10*time.Second, 20*time.Millisecond)
	consumer.Kill(t)

	// The dead letters the consumer's dead-letterer would have written, each with its
	// own dead-lettering id.
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, ch.Confirm(false))
	confs := make([]*amqp.DeferredConfirmation, 0, total)
	for i := range total {
		c, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), rabbit.DeadLetterExchange, rabbit.DLQName(id), true, false, amqp.Publishing{
			MessageId: fmt.Sprintf("poison-%04d", i), DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf(`{"n":%d`, i)),
			Headers: amqp.Table{rabbit.HeaderDeadLetterReason: "invalid_json: unexpected end of JSON input", "x-dead-letter-id": uuid.NewString()},
		})
		require.NoError(t, err)
		confs = append(confs, c)
	}
	for _, c := range confs {
		ok, err := c.WaitContext(context.Background())
		require.NoError(t, err)
		require.True(t, ok)
	}

	db, err := pgx.Connect(context.Background(), env["DATABASE_URL"])
	require.NoError(t, err)
	defer db.Close(context.Background())
	count := func() (rows, distinct, deaths int) {
		require.NoError(t, db.QueryRow(context.Background(),
			`SELECT count(*), count(DISTINCT id), coalesce(sum(deaths), 0) FROM dead_letters WHERE tenant_id = $1`, id).
			Scan(&rows, &distinct, &deaths))
		return rows, distinct, deaths
	}

	consumer = Start(t, "consumer", env)
	require.Eventually(t, func() bool { rows, _, _ := count(); return rows > 0 }, 20*time.Second, 2*time.Millisecond)
	consumer.Kill(t)
	atKill, _, _ := count()
	t.Logf("SIGKILL with %d of %d dead letters archived", atKill, total)

	restarted := time.Now()
	Start(t, "consumer", env) // runs until the test ends
	dlqEmpty := func() bool {
		q, err := amqptest.Inspect(t, conn, rabbit.DLQName(id))
		return err == nil && q.Messages == 0
	}
	require.Eventually(t, func() bool { rows, _, _ := count(); return rows >= total && dlqEmpty() }, 30*time.Second, 20*time.Millisecond)
	t.Logf("the rest archived %s after the restart (process start included)", time.Since(restarted))
	rows, distinct, deaths := count()
	require.Equal(t, total, rows, "none lost")
	require.Equal(t, total, distinct, "none duplicated")
	require.Equal(t, total, deaths, "no dead-lettering counted twice")

	// Deleting the tenant removes its archive with it.
	code, _, body = jsonCall(t, "DELETE", command.URL()+"/tenants/"+id, nil, nil)
	require.Equal(t, 202, code, "%v", body)
	require.Eventually(t, func() bool { rows, _, _ := count(); return rows == 0 }, 15*time.Second, 20*time.Millisecond)
}
