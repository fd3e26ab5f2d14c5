//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/rabbit"
)

// system is the three services running against one database.
type system struct {
	command, consumer, query *Proc
	env                      map[string]string
}

func startSystem(t *testing.T) *system {
	t.Helper()
	return startSystemWith(t, Env(t))
}

// startSystemWith migrates, then runs the three services on env until they are ready.
func startSystemWith(t *testing.T, env map[string]string) *system {
	t.Helper()
	code, out := Run(t, "command", env, "-migrate")
	require.Equal(t, 0, code, out)
	s := &system{env: env}
	s.command = Start(t, "command", env)
	s.consumer = Start(t, "consumer", env)
	s.query = Start(t, "query", env)
	for _, p := range []*Proc{s.command, s.consumer, s.query} {
		p.WaitStatus(t, "/readyz", 200, 30*time.Second)
	}
	return s
}

// jsonCall sends a JSON request and decodes the JSON answer into a map.
func jsonCall(t *testing.T, method, u string, body any, headers map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient(t).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &m), "body: %s", raw)
	}
	return resp.StatusCode, resp.Header, m
}

// allMessageIDs walks every page of a tenant's messages and returns the ids in order.
func allMessageIDs(t *testing.T, q *Proc, tenant string) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		u := q.URL() + "/tenants/" + tenant + "/messages?limit=100"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		code, _, body := jsonCall(t, "GET", u, nil, nil)
		require.Equal(t, 200, code, "%v", body)
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

func consumers(t *testing.T, conn *amqp.Connection, queue string) (int, error) {
	t.Helper()
	q, err := amqptest.Inspect(t, conn, queue)
	return q.Consumers, err
}

// The whole product through its real binaries: create, publish over AMQP and HTTP, read,
// resize live, delete.
func TestTenantLifecycleEndToEnd(t *testing.T) {
	s := startSystem(t)
	conn := amqptest.Dial(t)

	code, hdr, created := jsonCall(t, "POST", s.command.URL()+"/tenants", map[string]any{"name": "acme-" + uuid.NewString()[:8], "workers": 3}, nil)
	require.Equal(t, 201, code, "%v", created)
	id := created["id"].(string)
	amqptest.CleanupTenant(t, id)
	require.Equal(t, "/tenants/"+id, hdr.Get("Location"))
	require.Equal(t, "active", created["status"])
	require.EqualValues(t, 1, created["version"])

	// The queue exists when 201 returns: publish at once, before any worker may run.
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(false))
	var want []string
	for i := range 100 {
		msgID := uuid.NewString()
		want = append(want, msgID)
		dc, err := ch.PublishWithDeferredConfirm("", rabbit.QueueName(id), true, false, amqp.Publishing{
			MessageId: msgID, DeliveryMode: amqp.Persistent, ContentType: "application/json",
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i)),
		})
		require.NoError(t, err)
		ok, err := dc.WaitContext(context.Background())
		require.NoError(t, err)
		require.True(t, ok)
	}
	// Over HTTP, with one idempotency key used twice for the same body (a retry): one
	// message. The same key with another body is refused.
	var httpIDs []string
	for i := range 10 {
		h := map[string]string{}
		msg := map[string]any{"i": i}
		if i >= 8 {
			h["Idempotency-Key"] = "order-42"
			msg = map[string]any{"i": 8}
		}
		code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/messages", msg, h)
		require.Equal(t, 202, code, "%v", body)
		require.Equal(t, id, body["tenant_id"])
		httpIDs = append(httpIDs, body["id"].(string))
	}
	require.Equal(t, httpIDs[8], httpIDs[9], "same Idempotency-Key, same message id")
	code, _, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/messages", map[string]any{"i": 99}, map[string]string{"Idempotency-Key": "order-42"})
	require.Equal(t, 409, code, "%v", body)
	require.Equal(t, "idempotency_key_reused", body["code"])
	want = append(want, httpIDs[:9]...)

	require.Eventually(t, func() bool { return len(allMessageIDs(t, s.query, id)) >= len(want) }, 15*time.Second, 50*time.Millisecond)
	got := allMessageIDs(t, s.query, id)
	require.ElementsMatch(t, want, got, "every message stored exactly once")

	// workers.current follows what the consumer runs.
	tenantView := func() map[string]any {
		_, _, body := jsonCall(t, "GET", s.query.URL()+"/tenants/"+id, nil, nil)
		return body
	}
	require.Eventually(t, func() bool {
		w, _ := tenantView()["workers"].(map[string]any)
		return w != nil && w["desired"] == 3.0 && w["current"] == 3.0
	}, 5*time.Second, 50*time.Millisecond)

	// Resize live: within 5 s the queue has exactly that many consumers.
	for _, n := range []int{5, 1} {
		code, _, body := jsonCall(t, "PUT", s.command.URL()+"/tenants/"+id+"/config/concurrency", map[string]any{"workers": n}, nil)
		require.Equal(t, 200, code, "%v", body)
		require.Eventually(t, func() bool {
			c, err := consumers(t, conn, rabbit.QueueName(id))
			return err == nil && c == n
		}, 5*time.Second, 50*time.Millisecond, "consumer count %d", n)
		require.Eventually(t, func() bool {
			w, _ := tenantView()["workers"].(map[string]any)
			return w != nil && w["current"] == float64(n)
		}, 5*time.Second, 50*time.Millisecond)
	}

	// A stale If-Match is refused and records nothing.
	code, _, body = jsonCall(t, "PUT", s.command.URL()+"/tenants/"+id+"/config/concurrency", map[string]any{"workers": 2}, map[string]string{"If-Match": `"1"`})
	require.Equal(t, 412, code, "%v", body)

	// A rate limit of the tenant's own: the query side shows it, ingest over it is 429,
	// and the consumer's pool is left as it was.
	code, _, body = jsonCall(t, "PUT", s.command.URL()+"/tenants/"+id+"/config/rate-limit", map[string]any{"per_second": 1, "burst": 1}, nil)
	require.Equal(t, 200, code, "%v", body)
	require.Eventually(t, func() bool {
		limit, _ := tenantView()["rate_limit"].(map[string]any)
		return limit != nil && limit["per_second"] == 1.0 && limit["burst"] == 1.0
	}, 5*time.Second, 50*time.Millisecond)
	limited := 0
	// One token a second: of 20 publishes in a row, at most a few can find one.
	for range 20 {
		code, hdr, body := jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/messages", map[string]any{"flood": true}, nil)
		if code == 429 {
			limited++
			require.Equal(t, "rate_limited", body["code"])
			require.Equal(t, "1", hdr.Get("Retry-After"))
		}
	}
	require.Positive(t, limited)
	w, _ := tenantView()["workers"].(map[string]any)
	require.Equal(t, 1.0, w["desired"])
	c, err := consumers(t, conn, rabbit.QueueName(id))
	require.NoError(t, err)
	require.Equal(t, 1, c)

	// Delete: the queue, the partition and the tenant disappear.
	code, _, body = jsonCall(t, "DELETE", s.command.URL()+"/tenants/"+id, nil, nil)
	require.Equal(t, 202, code, "%v", body)
	require.Equal(t, "deleting", body["status"])
	require.Eventually(t, func() bool {
		_, err := consumers(t, conn, rabbit.QueueName(id))
		return err != nil
	}, 5*time.Second, 50*time.Millisecond, "queue deleted")
	require.Eventually(t, func() bool {
		code, _, _ := jsonCall(t, "GET", s.query.URL()+"/tenants/"+id, nil, nil)
		return code == 404
	}, 5*time.Second, 50*time.Millisecond)
	code, _, _ = jsonCall(t, "POST", s.command.URL()+"/tenants/"+id+"/messages", map[string]any{"late": true}, nil)
	require.Equal(t, 404, code)
}
