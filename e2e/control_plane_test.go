//go:build integration

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// createTenant creates a tenant through the command service and cleans its broker
// objects up at test end.
func createTenant(t *testing.T, s *system, workers int) string {
	t.Helper()
	code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants", map[string]any{"name": "ops-" + uuid.NewString()[:8], "workers": workers}, nil)
	require.Equal(t, 201, code, "%v", body)
	id := body["id"].(string)
	amqptest.CleanupTenant(t, id)
	require.Eventually(t, func() bool { return s.query.Status("/tenants/"+id) == 200 }, 5*time.Second, 20*time.Millisecond, "the query side knows the tenant")
	return id
}

// publishAMQP publishes bodies with the given message ids straight into the tenant's
// queue with publisher confirms.
func publishAMQP(t *testing.T, conn *amqp.Connection, tenant string, ids []string, body func(i int) string) {
	t.Helper()
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	require.NoError(t, ch.Confirm(false))
	for i, id := range ids {
		dc, err := ch.PublishWithDeferredConfirm("", rabbit.QueueName(tenant), true, false, amqp.Publishing{
			MessageId: id, DeliveryMode: amqp.Persistent, ContentType: "application/json",
			Timestamp: time.Now(), Body: []byte(body(i)),
		})
		require.NoError(t, err)
		ok, err := dc.WaitContext(context.Background())
		require.NoError(t, err)
		require.True(t, ok)
	}
}

// deadLetters lists a tenant's dead letters (first page of up to 100) with a filter query.
func deadLetters(t *testing.T, s *system, tenant, filter string) []map[string]any {
	t.Helper()
	code, _, body := jsonCall(t, "GET", s.query.URL()+"/tenants/"+tenant+"/dead-letters?limit=100&"+filter, nil, nil)
	require.Equal(t, 200, code, "%v", body)
	var out []map[string]any
	for _, d := range body["data"].([]any) {
		out = append(out, d.(map[string]any))
	}
	return out
}

// history walks every page of a tenant's event history and returns the event types.
func history(t *testing.T, s *system, tenant string) []map[string]any {
	t.Helper()
	var out []map[string]any
	cursor := ""
	for {
		u := s.query.URL() + "/tenants/" + tenant + "/events?limit=2"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		code, _, body := jsonCall(t, "GET", u, nil, nil)
		require.Equal(t, 200, code, "%v", body)
		for _, e := range body["data"].([]any) {
			out = append(out, e.(map[string]any))
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			return out
		}
		cursor = next
	}
}

func queueDepth(t *testing.T, conn *amqp.Connection, queue string) int {
	t.Helper()
	q, err := amqptest.Inspect(t, conn, queue)
	require.NoError(t, err)
	return q.Messages
}

// Dead letters end to end: a poison message and a too-large one are archived with their
// reasons; a dry run moves nothing; once the cause is fixed (the consumer restarted
// with a larger MAX_MESSAGE_BYTES) a redrive stores the message once; the same redrive
// again moves nothing; a message that fails again comes back with its death count
// raised; purge; and the tenant's history shows every command in order.
func TestDeadLettersEndToEnd(t *testing.T) {
	env := Env(t)
	small := map[string]string{}
	for k, v := range env {
		small[k] = v
	}
	small["MAX_MESSAGE_BYTES"] = "64"
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)
	s := &system{env: env}
	s.command = Start(t, "command", env)
	s.consumer = Start(t, "consumer", small)
	s.query = Start(t, "query", env)
	for _, p := range []*Proc{s.command, s.consumer, s.query} {
		p.WaitStatus(t, "/readyz", 200, 30*time.Second)
	}
	conn := amqptest.Dial(t)
	id := createTenant(t, s, 1)

	poisonID, bigID, goodID := "poison-"+uuid.NewString()[:8], uuid.NewString(), uuid.NewString()
	big := `{"pad":"` + strings.Repeat("x", 100) + `"}`
	publishAMQP(t, conn, id, []string{poisonID, bigID, goodID}, func(i int) string {
		return []string{`{"broken":`, big, `[{"ok":true},2]`}[i] // any JSON value is a message, not only an object
	})

	// Visible in the API with its reason within 5 s.
	var dls []map[string]any
	require.Eventually(t, func() bool {
		dls = deadLetters(t, s, id, "")
		return len(dls) == 2
	}, 5*time.Second, 50*time.Millisecond)
	byMsg := map[string]map[string]any{}
	for _, d := range dls {
		byMsg[d["message_id"].(string)] = d
		require.Equal(t, "pending", d["status"])
		require.EqualValues(t, 1, d["deaths"])
	}
	require.Equal(t, "invalid_json", byMsg[poisonID]["reason"])
	require.Equal(t, "base64", byMsg[poisonID]["payload_encoding"], "a poison body is not JSON")
	require.NotEmpty(t, byMsg[poisonID]["payload_base64"])
	require.Equal(t, "too_large", byMsg[bigID]["reason"])
	require.Equal(t, bigID, byMsg[bigID]["id"], "a UUID message id is the row id")
	require.Len(t, deadLetters(t, s, id, "reason=too_large"), 1)
	require.Len(t, deadLetters(t, s, id, "status=redriven"), 0)
	code, _, body := jsonCall(t, "GET", s.query.URL()+"/tenants/"+id+"/dead-letters?status=bogus", nil, nil)
	require.Equal(t, 400, code, "%v", body)
	require.Equal(t, 0, queueDepth(t, conn, rabbit.DLQName(id)), "archived dead letters are acked off the DLQ")
	require.Eventually(t, func() bool { return len(allMessageIDs(t, s.query, id)) == 1 }, 5*time.Second, 50*time.Millisecond)

	// Dry run: answers how many would move, moves nothing.
	redrive := s.command.URL() + "/tenants/" + id + "/dead-letters/redrive"
	code, _, body = jsonCall(t, "POST", redrive, map[string]any{"reason": "too_large", "max": 10, "dry_run": true}, nil)
	require.Equal(t, 200, code, "%v", body)
	require.EqualValues(t, 1, body["matched"])
	require.Equal(t, "pending", deadLetters(t, s, id, "reason=too_large")[0]["status"])
	code, _, body = jsonCall(t, "POST", redrive, map[string]any{"ids": []string{bigID}, "reason": "too_large"}, nil)
	require.Equal(t, 400, code, "ids and reason together: %v", body)

	// Fix the cause: the consumer accepts larger messages now.
	c, _ := s.consumer.Terminate(t, 15*time.Second)
	require.Equal(t, 0, c)
	s.consumer = Start(t, "consumer", env)
	s.consumer.WaitStatus(t, "/readyz", 200, 30*time.Second)

	code, _, body = jsonCall(t, "POST", redrive, map[string]any{"ids": []string{bigID}, "dry_run": false}, nil)
	require.Equal(t, 202, code, "%v", body)
	require.EqualValues(t, 1, body["matched"])
	require.Eventually(t, func() bool { return len(allMessageIDs(t, s.query, id)) == 2 }, 5*time.Second, 50*time.Millisecond)
	require.ElementsMatch(t, []string{goodID, bigID}, allMessageIDs(t, s.query, id), "the redriven message is stored under its own id, once")
	require.Equal(t, "redriven", deadLetters(t, s, id, "reason=too_large")[0]["status"])

	// The same redrive again moves nothing.
	code, _, body = jsonCall(t, "POST", redrive, map[string]any{"ids": []string{bigID}}, nil)
	require.Equal(t, 202, code, "%v", body)
	require.EqualValues(t, 0, body["matched"])

	// A poison message redriven fails again: back to pending, two deaths.
	code, _, body = jsonCall(t, "POST", redrive, map[string]any{"reason": "invalid_json"}, nil)
	require.Equal(t, 202, code, "%v", body)
	require.EqualValues(t, 1, body["matched"])
	require.Eventually(t, func() bool {
		d := deadLetters(t, s, id, "reason=invalid_json")
		return len(d) == 1 && d[0]["status"] == "pending" && d[0]["deaths"] == 2.0
	}, 10*time.Second, 50*time.Millisecond)

	// Purge it.
	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+id+"/dead-letters", map[string]any{"reason": "invalid_json"}, nil)
	require.Equal(t, 200, code, "%v", body)
	require.EqualValues(t, 1, body["purged"])
	require.Equal(t, "purged", deadLetters(t, s, id, "reason=invalid_json")[0]["status"])
	code, _, body = jsonCall(t, "POST", redrive, map[string]any{"reason": "invalid_json"}, nil)
	require.Equal(t, 202, code, "%v", body)
	require.EqualValues(t, 0, body["matched"], "a purged dead letter is never redriven")

	// History: every event, oldest first, with consecutive versions.
	var types []string
	for i, e := range history(t, s, id) {
		require.EqualValues(t, i+1, e["version"])
		require.NotEmpty(t, e["occurred_at"])
		types = append(types, e["type"].(string))
	}
	require.Equal(t, []string{
		"tenant.created.v1",
		"tenant.dead_letters_redriven.v1", // the big one
		"tenant.dead_letters_redriven.v1", // the poison one (redrives that matched nothing record nothing)
		"tenant.dead_letters_purged.v1",
	}, types)
}

// Pause stops consumption while the queue keeps accepting (AMQP and HTTP); resize of a
// paused tenant changes only its desired count; resume drains everything exactly once.
func TestPauseResumeEndToEnd(t *testing.T) {
	s := startSystem(t)
	conn := amqptest.Dial(t)
	id := createTenant(t, s, 2)
	tenantView := func() map[string]any {
		_, _, body := jsonCall(t, "GET", s.query.URL()+"/tenants/"+id, nil, nil)
		return body
	}
	require.Eventually(t, func() bool {
		c, err := consumers(t, conn, rabbit.QueueName(id))
		return err == nil && c == 2
	}, 5*time.Second, 50*time.Millisecond)

	code, hdr, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/pause", nil, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Equal(t, "paused", body["status"])
	require.NotEmpty(t, hdr.Get("ETag"))
	version := body["version"]
	code, _, body = jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/pause", nil, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Equal(t, version, body["version"], "pausing a paused tenant records nothing")

	require.Eventually(t, func() bool {
		c, err := consumers(t, conn, rabbit.QueueName(id))
		return err == nil && c == 0
	}, 5*time.Second, 50*time.Millisecond, "no consumers while paused")
	require.Eventually(t, func() bool {
		v := tenantView()
		w, _ := v["workers"].(map[string]any)
		return v["status"] == "paused" && w != nil && w["current"] == 0.0 && w["desired"] == 2.0
	}, 5*time.Second, 50*time.Millisecond)

	// The queue keeps accepting over both paths; nothing is stored.
	var want []string
	for range 20 {
		want = append(want, uuid.NewString())
	}
	publishAMQP(t, conn, id, want, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	for i := range 20 {
		code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/messages", map[string]any{"http": i}, nil)
		require.Equal(t, 202, code, "%v", body)
		want = append(want, body["id"].(string))
	}
	require.Equal(t, 40, queueDepth(t, conn, rabbit.QueueName(id)), "the queue grows while paused")
	require.Empty(t, allMessageIDs(t, s.query, id), "nothing stored while paused")

	// Resizing a paused tenant changes its desired count only.
	code, _, body = jsonCall(t, "PUT", s.command.URL()+"/tenants/"+id+"/config/concurrency", map[string]any{"workers": 3}, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Eventually(t, func() bool {
		v := tenantView()
		w, _ := v["workers"].(map[string]any)
		return v["status"] == "paused" && w != nil && w["desired"] == 3.0
	}, 5*time.Second, 50*time.Millisecond)
	c, err := consumers(t, conn, rabbit.QueueName(id))
	require.NoError(t, err)
	require.Equal(t, 0, c)
	require.Equal(t, 40, queueDepth(t, conn, rabbit.QueueName(id)))

	code, _, body = jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/resume", nil, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Equal(t, "active", body["status"])
	require.Eventually(t, func() bool {
		c, err := consumers(t, conn, rabbit.QueueName(id))
		return err == nil && c == 3
	}, 5*time.Second, 50*time.Millisecond, "resume restores the desired workers")
	require.Eventually(t, func() bool { return len(allMessageIDs(t, s.query, id)) >= 40 }, 10*time.Second, 50*time.Millisecond)
	require.ElementsMatch(t, want, allMessageIDs(t, s.query, id), "nothing lost or stored twice")

	// The lag of those deliveries is measured (HTTP ingest sets the AMQP timestamp).
	metrics := getText(t, s.consumer.URL()+"/metrics")
	require.Regexp(t, `(?m)^consumer_delivery_lag_seconds_count [1-9]`, metrics)
	require.Contains(t, metrics, `tenant_paused{tenant_id="`+id+`"} 0`)
}

// Drain then delete: ingest over HTTP is refused, the consumer stores everything the
// queue held (even for a paused tenant), and only then are queue and partition removed.
// A drain that cannot finish in time stays draining and says so.
func TestDrainThenDeleteEndToEnd(t *testing.T) {
	s := startSystem(t)
	conn := amqptest.Dial(t)
	id := createTenant(t, s, 1)
	code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/pause", nil, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Eventually(t, func() bool {
		c, err := consumers(t, conn, rabbit.QueueName(id))
		return err == nil && c == 0
	}, 5*time.Second, 50*time.Millisecond)
	var want []string
	for range 300 {
		want = append(want, uuid.NewString())
	}
	publishAMQP(t, conn, id, want, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })

	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+id+"?drain=true&drain_timeout=1m", nil, nil)
	require.Equal(t, 202, code, "%v", body)
	require.Equal(t, "draining", body["status"])
	code, _, body = jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/messages", map[string]any{"late": true}, nil)
	require.Equal(t, 409, code, "%v", body)
	require.Equal(t, "tenant_draining", body["code"])
	code, _, body = jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/resume", nil, nil)
	require.Equal(t, 409, code, "%v", body)

	// Every message is stored before the tenant goes away: the list reaches all 300
	// while the tenant is still readable, and then the tenant, queue and partition go.
	var stored []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, _, _ := jsonCall(t, "GET", s.query.URL()+"/tenants/"+id, nil, nil)
		if code == 404 {
			break
		}
		if ids := messageIDsIfReadable(t, s, id); len(ids) > len(stored) {
			stored = ids
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.ElementsMatch(t, want, stored, "every message published before the drain was stored before the delete")
	require.Eventually(t, func() bool {
		_, err := consumers(t, conn, rabbit.QueueName(id))
		return err != nil
	}, 10*time.Second, 50*time.Millisecond, "queue deleted")
	require.Equal(t, []string{"tenant.created.v1", "tenant.paused.v1", "tenant.deletion_requested.v1", "tenant.deleted.v1"}, eventTypes(t, s, id))

	// A drain that cannot finish: no consumer runs, so after drain_timeout the tenant
	// stays draining, says it timed out, and keeps its messages.
	other := createTenant(t, s, 1)
	c, _ := s.consumer.Terminate(t, 15*time.Second)
	require.Equal(t, 0, c)
	publishAMQP(t, conn, other, []string{uuid.NewString()}, func(int) string { return `{"x":1}` })
	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+other+"?drain=true&drain_timeout=1s", nil, nil)
	require.Equal(t, 202, code, "%v", body)
	require.Eventually(t, func() bool {
		_, _, v := jsonCall(t, "GET", s.query.URL()+"/tenants/"+other, nil, nil)
		drain, _ := v["drain"].(map[string]any)
		return v["status"] == "draining" && drain != nil && drain["timed_out"] == true
	}, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, 1, queueDepth(t, conn, rabbit.QueueName(other)), "a timed-out drain deletes nothing")
	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+other+"?drain_timeout=bogus&drain=true", nil, nil)
	require.Equal(t, 400, code, "%v", body)
	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+other, nil, nil)
	require.Equal(t, 202, code, "a plain delete still deletes a draining tenant: %v", body)
}

// messageIDsIfReadable lists a tenant's stored message ids, or nil once it is gone.
func messageIDsIfReadable(t *testing.T, s *system, tenant string) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		u := s.query.URL() + "/tenants/" + tenant + "/messages?limit=100"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		code, _, body := jsonCall(t, "GET", u, nil, nil)
		if code != 200 {
			return nil
		}
		for _, m := range body["data"].([]any) {
			ids = append(ids, m.(map[string]any)["id"].(string))
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			return ids
		}
		cursor = next
	}
}

// eventTypes reads a tenant's event types straight from the event store (the query API
// answers 404 for a deleted tenant).
func eventTypes(t *testing.T, s *system, tenant string) []string {
	t.Helper()
	ctx := context.Background()
	db, err := pgx.Connect(ctx, s.env["DATABASE_URL"])
	require.NoError(t, err)
	defer db.Close(ctx)
	rows, err := db.Query(context.Background(), `SELECT event_type FROM event_store WHERE stream_id = $1 ORDER BY version`, tenant)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ string
		require.NoError(t, rows.Scan(&typ))
		out = append(out, typ)
	}
	require.NoError(t, rows.Err())
	return out
}

func getText(t *testing.T, u string) string {
	t.Helper()
	resp, err := httpClient(t).Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	return string(b)
}
