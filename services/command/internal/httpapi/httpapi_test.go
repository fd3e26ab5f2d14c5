//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/platform/msgid"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/broker"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
	"github.com/multitenant/mtm/services/command/internal/httpapi"
	"github.com/multitenant/mtm/services/command/internal/idempotency"
	"github.com/multitenant/mtm/services/command/internal/ratelimit"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

const bodyLimit = 4096

type fixture struct {
	t    *testing.T
	env  commandtest.Env
	base string
}

// newFixture builds the service's Fiber app in-process on a fresh database. With
// brokerUp false every broker call fails as in an outage.
func newFixture(t *testing.T, brokerUp bool) *fixture {
	t.Helper()
	return newGuardedFixture(t, brokerUp, httpapi.Guards{})
}

func newGuardedFixture(t *testing.T, brokerUp bool, guards httpapi.Guards) *fixture {
	t.Helper()
	return newFixtureWith(t, fixtureOptions{brokerUp: brokerUp, guards: guards})
}

// newAccountsFixture is a fixture with per-tenant broker accounts on.
func newAccountsFixture(t *testing.T, accounts tenant.Accounts) *fixture {
	t.Helper()
	return newFixtureWith(t, fixtureOptions{brokerUp: true, accounts: accounts})
}

type fixtureOptions struct {
	brokerUp bool
	guards   httpapi.Guards
	limits   *tenant.Limits      // nil: commandtest.Limits
	limiter  *ratelimit.Limiters // nil: the API's own, on the real clock
	accounts tenant.Accounts     // nil: broker accounts off
}

func newFixtureWith(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	var topoConn, pubConn *rabbit.Conn
	if o.brokerUp {
		topoConn = commandtest.RunConn(t, amqptest.URL(t))
		pubConn = commandtest.RunConn(t, amqptest.URL(t))
	} else {
		topoConn, pubConn = commandtest.DownConn(), commandtest.DownConn()
	}
	limits := commandtest.Limits
	if o.limits != nil {
		limits = *o.limits
	}
	env := commandtest.NewWithLimits(t, topoConn, limits)
	if o.accounts != nil {
		env.Tenants.WithAccounts(o.accounts)
	}
	pub := broker.NewPublisher(pubConn, commandtest.Log, broker.PublisherOptions{Channels: 2})
	t.Cleanup(pub.Close)
	env.Tenants.WithRedrive(pub, 100_000)
	srv := httpserver.New(httpserver.Options{Service: "command-test", Addr: "127.0.0.1:0", Log: commandtest.Log, BodyLimit: bodyLimit})
	httpapi.RegisterDocs(srv.App)
	api := httpapi.New(env.Tenants, pub, commandtest.Log).WithGuards(o.guards).
		WithIdempotencyKeys(idempotency.New(env.Pool, 24*time.Hour))
	if o.limiter != nil {
		api.WithLimiter(o.limiter)
	}
	httpapi.Register(srv.App, api)
	// A real listener: Fiber's app.Test cannot show a 413 for an oversized body.
	require.NoError(t, srv.Listen())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Run(context.Background())
	}()
	t.Cleanup(func() {
		_ = srv.Stop(context.Background())
		<-done
	})
	return &fixture{t: t, env: env, base: "http://" + srv.Addr()}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request; failures are reported on the fixture's test, which subtests
// must not be, so subtests call doT.
func (f *fixture) do(method, path, contentType, body string, headers ...string) response {
	f.t.Helper()
	return doT(f.t, f.base, method, path, contentType, body, headers...)
}

func (f *fixture) doT(t *testing.T, method, path, contentType, body string, headers ...string) response {
	t.Helper()
	return doT(t, f.base, method, path, contentType, body, headers...)
}

func doT(t *testing.T, base, method, path, contentType, body string, headers ...string) response {
	t.Helper()
	r, err := send(t.Context(), base, method, path, contentType, body, headers...)
	require.NoError(t, err)
	return r
}

// send is doT for goroutines other than the test's, which must not call require.
func send(ctx context.Context, base, method, path, contentType, body string, headers ...string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, nil
}

func (f *fixture) json(method, path, body string, headers ...string) response {
	f.t.Helper()
	return f.do(method, path, "application/json", body, headers...)
}

// requireProblem checks a problem+json answer with the given status.
func requireProblem(t *testing.T, r response, status int) {
	t.Helper()
	require.Equal(t, status, r.status, r.raw)
	assert.Equal(t, httpserver.ProblemContentType, r.header.Get("Content-Type"))
	assert.EqualValues(t, status, r.body["status"])
	assert.NotEmpty(t, r.body["code"])
	assert.NotEmpty(t, r.body["type"])
	assert.NotEmpty(t, r.body["title"])
}

func (f *fixture) createTenant(name string, workers int) string {
	f.t.Helper()
	r := f.json("POST", "/tenants", fmt.Sprintf(`{"name":%q,"workers":%d}`, name, workers))
	require.Equal(f.t, http.StatusCreated, r.status, r.raw)
	id := r.body["id"].(string)
	amqptest.CleanupTenant(f.t, id)
	return id
}

func TestCreateTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	name := "acme-" + uuid.NewString()[:8]

	r := f.json("POST", "/tenants", `{"name":"  `+name+`  ","workers":5}`, "X-Correlation-ID", "corr-123")
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	id, _ := r.body["id"].(string)
	amqptest.CleanupTenant(t, id)
	_, err := uuid.Parse(id)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"id": id, "name": name, "workers": 5.0, "status": "active", "version": 1.0}, r.body)
	assert.Equal(t, "/tenants/"+id, r.header.Get("Location"))
	assert.Equal(t, `"1"`, r.header.Get("ETag"))

	// The queue exists with its dead-letter queue by the time 201 is sent.
	admin := amqptest.Dial(t)
	_, err = amqptest.Inspect(t, admin, rabbit.QueueName(id))
	require.NoError(t, err)
	_, err = amqptest.Inspect(t, admin, rabbit.DLQName(id))
	require.NoError(t, err)

	stored, err := f.env.Store.Load(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, "corr-123", stored[0].Metadata.CorrelationID)

	// workers is optional.
	r = f.json("POST", "/tenants", `{"name":"defaults-`+name+`"}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	amqptest.CleanupTenant(t, r.body["id"].(string))
	assert.EqualValues(t, 3, r.body["workers"])
	// Without X-Correlation-ID the request id is recorded.
	stored, err = f.env.Store.Load(t.Context(), r.body["id"].(string))
	require.NoError(t, err)
	assert.Equal(t, r.header.Get("X-Request-ID"), stored[0].Metadata.CorrelationID)

	// Duplicate name, also when only the case differs.
	before := f.env.EventCount(t)
	requireProblem(t, f.json("POST", "/tenants", `{"name":"`+strings.ToUpper(name)+`"}`), http.StatusConflict)
	assert.Equal(t, before, f.env.EventCount(t))
}

func TestCreateTenantBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	long := strings.Repeat("n", 201)
	cases := []struct {
		name        string
		contentType string
		body        string
		status      int
		field       string
	}{
		{"malformed JSON", "application/json", `{"name":`, 400, ""},
		{"invalid UTF-8 name", "application/json", "{\"name\":\"a\xffb\"}", 400, ""},
		{"trailing garbage", "application/json", `{"name":"a"} x`, 400, ""},
		{"empty body", "application/json", ``, 400, ""},
		{"not JSON content type", "text/plain", `{"name":"a"}`, 415, ""},
		{"no content type", "", `{"name":"a"}`, 415, ""},
		{"form content type", "application/x-www-form-urlencoded", `name=a`, 415, ""},
		{"array body", "application/json", `[]`, 422, ""},
		{"unknown field", "application/json", `{"name":"a","colour":"red"}`, 422, "colour"},
		{"missing name", "application/json", `{"workers":2}`, 422, "name"},
		{"empty name", "application/json", `{"name":""}`, 422, "name"},
		{"blank name", "application/json", `{"name":"   "}`, 422, "name"},
		{"201-character name", "application/json", `{"name":"` + long + `"}`, 422, "name"},
		{"name not a string", "application/json", `{"name":42}`, 422, "name"},
		{"workers 0", "application/json", `{"name":"a","workers":0}`, 422, "workers"},
		{"workers -1", "application/json", `{"name":"a","workers":-1}`, 422, "workers"},
		{"workers 3.5", "application/json", `{"name":"a","workers":3.5}`, 422, "workers"},
		{"workers string", "application/json", `{"name":"a","workers":"5"}`, 422, "workers"},
		{"workers 1e9", "application/json", `{"name":"a","workers":1e9}`, 422, "workers"},
		{"workers above MAX_WORKERS", "application/json", `{"name":"a","workers":65}`, 422, "workers"},
		{"workers null", "application/json", `{"name":"a","workers":null}`, 422, "workers"},
		{"body over the limit", "application/json", `{"name":"` + strings.Repeat("x", bodyLimit) + `"}`, 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.doT(t, "POST", "/tenants", tc.contentType, tc.body)
			requireProblem(t, r, tc.status)
			if tc.field != "" {
				errs, _ := r.body["errors"].([]any)
				require.NotEmpty(t, errs, r.raw)
				assert.Equal(t, tc.field, errs[0].(map[string]any)["field"], r.raw)
			}
		})
	}
	assert.Equal(t, 0, f.env.EventCount(t), "bad input writes no event")
}

func TestChangeConcurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("resize-"+uuid.NewString()[:8], 3)
	path := "/tenants/" + id + "/config/concurrency"

	r := f.json("PUT", path, `{"workers":5}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "workers": 5.0, "version": 2.0}, r.body)
	assert.Equal(t, `"2"`, r.header.Get("ETag"))

	// Same count: accepted, nothing recorded, current version.
	r = f.json("PUT", path, `{"workers":5}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.EqualValues(t, 2, r.body["version"])
	assert.Equal(t, []int{1, 2}, f.env.Versions(t, id))

	// If-Match in every accepted spelling.
	for i, ifMatch := range []string{`"2"`, `3`, `"4"`, `*`} {
		r = f.json("PUT", path, fmt.Sprintf(`{"workers":%d}`, 10+i), "If-Match", ifMatch)
		require.Equal(t, http.StatusOK, r.status, "If-Match %s: %s", ifMatch, r.raw)
		assert.EqualValues(t, 3+i, r.body["version"])
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6}, f.env.Versions(t, id))

	before := f.env.EventCount(t)
	bad := []struct {
		name    string
		ct      string
		body    string
		headers []string
		status  int
	}{
		{"stale If-Match", "application/json", `{"workers":2}`, []string{"If-Match", `"2"`}, 412},
		{"garbage If-Match", "application/json", `{"workers":2}`, []string{"If-Match", `"abc"`}, 412},
		{"weak If-Match never matches", "application/json", `{"workers":2}`, []string{"If-Match", `W/"6"`}, 412},
		{"workers 0", "application/json", `{"workers":0}`, nil, 422},
		{"workers -1", "application/json", `{"workers":-1}`, nil, 422},
		{"workers 3.5", "application/json", `{"workers":3.5}`, nil, 422},
		{"workers string", "application/json", `{"workers":"5"}`, nil, 422},
		{"workers 1e9", "application/json", `{"workers":1e9}`, nil, 422},
		{"workers 1000000000", "application/json", `{"workers":1000000000}`, nil, 422},
		{"workers missing", "application/json", `{}`, nil, 422},
		{"unknown field", "application/json", `{"workers":2,"extra":1}`, nil, 422},
		{"malformed JSON", "application/json", `{"workers":`, nil, 400},
		{"not JSON", "text/plain", `workers=2`, nil, 415},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, f.doT(t, "PUT", path, tc.ct, tc.body, tc.headers...), tc.status)
		})
	}
	unknown := f.json("PUT", "/tenants/"+uuid.NewString()+"/config/concurrency", `{"workers":2}`)
	requireProblem(t, unknown, 404)
	assert.Equal(t, auth.CodeTenantNotFound, unknown.body["code"])
	// Only the canonical form names a tenant, as in the query service: other spellings
	// uuid.Parse would take, even of this live tenant, are the unknown tenant's 404.
	for _, bad := range []string{"not-a-uuid", strings.ReplaceAll(id, "-", ""), "{" + id + "}", "urn:uuid:" + id} {
		r := f.json("PUT", "/tenants/"+url.PathEscape(bad)+"/config/concurrency", `{"workers":2}`)
		requireProblem(t, r, 404)
		assert.Equal(t, auth.CodeTenantNotFound, r.body["code"], bad)
		assert.Equal(t, unknown.body["detail"], r.body["detail"], bad)
	}
	assert.Equal(t, before, f.env.EventCount(t), "bad input writes no event")
}

func TestDeleteTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	name := "del-" + uuid.NewString()[:8]
	id := f.createTenant(name, 2)

	requireProblem(t, f.do("DELETE", "/tenants/"+id, "", "", "If-Match", `"7"`), 412)
	requireProblem(t, f.do("DELETE", "/tenants/"+strings.ToUpper(id), "", "", "If-Match", `"7"`), 412)
	requireProblem(t, f.do("DELETE", "/tenants/"+strings.ReplaceAll(id, "-", ""), "", ""), 404)
	r := f.do("DELETE", "/tenants/"+id, "", "", "If-Match", `"1"`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "status": "deleting", "version": 2.0}, r.body)

	requireProblem(t, f.do("DELETE", "/tenants/"+id, "", ""), 404)
	requireProblem(t, f.do("DELETE", "/tenants/"+uuid.NewString(), "", ""), 404)
	requireProblem(t, f.do("DELETE", "/tenants/12345", "", ""), 404)
	requireProblem(t, f.json("PUT", "/tenants/"+id+"/config/concurrency", `{"workers":4}`), 404)
	requireProblem(t, f.json("POST", "/tenants/"+id+"/messages", `{"a":1}`), 404)
	assert.Equal(t, []int{1, 2}, f.env.Versions(t, id))

	// The name is free again.
	f.createTenant(name, 1)
}

func TestPublishMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("msg-"+uuid.NewString()[:8], 1)
	path := "/tenants/" + id + "/messages"

	r := f.json("POST", path, `{"order":1,"items":["a","b"]}`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	msgID := r.body["id"].(string)
	parsed, err := uuid.Parse(msgID)
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(7), parsed.Version())
	assert.Equal(t, id, r.body["tenant_id"])

	// The same Idempotency-Key gives the same id (UUIDv5 in the tenant's Idempotency-Key
	// namespace).
	first := f.json("POST", path, `{"order":2}`, "Idempotency-Key", "order-2")
	second := f.json("POST", path, `{"order":2}`, "Idempotency-Key", "order-2")
	other := f.json("POST", path, `{"order":3}`, "Idempotency-Key", "order-3")
	for _, r := range []response{first, second, other} {
		require.Equal(t, http.StatusAccepted, r.status, r.raw)
	}
	assert.Equal(t, first.body["id"], second.body["id"])
	assert.NotEqual(t, first.body["id"], other.body["id"])
	assert.Equal(t, msgid.FromIdempotencyKey(uuid.MustParse(id), "order-2").String(), first.body["id"])
	// Not the id the consumer gives an AMQP message_id "order-2": a producer on AMQP
	// cannot pre-empt the HTTP client's key, nor the reverse.
	assert.NotEqual(t, uuid.NewSHA1(uuid.MustParse(id), []byte("order-2")).String(), first.body["id"])

	// The same key with another body is refused, not silently deduplicated away.
	reused := f.json("POST", path, `{"order":99}`, "Idempotency-Key", "order-2")
	requireProblem(t, reused, http.StatusConflict)
	assert.Equal(t, "idempotency_key_reused", reused.body["code"])

	// Every 202 is in the queue with its id as AMQP message_id.
	admin := amqptest.Dial(t)
	ch, err := admin.Channel()
	require.NoError(t, err)
	defer ch.Close()
	d, ok, err := ch.Get(rabbit.QueueName(id), true)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, msgID, d.MessageId)
	assert.JSONEq(t, `{"order":1,"items":["a","b"]}`, string(d.Body))
	q, err := amqptest.Inspect(t, admin, rabbit.QueueName(id))
	require.NoError(t, err)
	assert.Equal(t, 3, q.Messages)

	bad := []struct {
		name    string
		path    string
		ct      string
		body    string
		headers []string
		status  int
	}{
		{"unknown tenant", "/tenants/" + uuid.NewString() + "/messages", "application/json", `{}`, nil, 404},
		{"non-UUID tenant", "/tenants/abc/messages", "application/json", `{}`, nil, 404},
		{"nil UUID tenant", "/tenants/" + uuid.Nil.String() + "/messages", "application/json", `{}`, nil, 404},
		{"non-canonical id of this tenant", "/tenants/" + strings.ReplaceAll(id, "-", "") + "/messages", "application/json", `{}`, nil, 404},
		{"not JSON", path, "text/plain", `hello`, nil, 415},
		{"malformed JSON", path, "application/json", `{"a":`, nil, 400},
		{"invalid UTF-8", path, "application/json", "{\"a\":\"\xff\"}", nil, 400},
		{"NUL escape jsonb cannot store", path, "application/json", `{"a":"x\u0000y"}`, nil, 422},
		{"lone high surrogate", path, "application/json", `{"a":"\ud800"}`, nil, 422},
		{"lone low surrogate", path, "application/json", `{"a":"\udc00x"}`, nil, 422},
		{"number numeric cannot hold", path, "application/json", `{"n":1e131072}`, nil, 422},
		{"number with too many decimals", path, "application/json", `{"n":1e-16384}`, nil, 422},
		{"numbers that print huge", path, "application/json", `{"n":[` + strings.TrimSuffix(strings.Repeat("1e131071,", 300), ",") + `]}`, nil, 422},
		{"array", path, "application/json", `[1,2]`, nil, 422},
		{"string", path, "application/json", `"x"`, nil, 422},
		{"too large", path, "application/json", `{"a":"` + strings.Repeat("x", bodyLimit) + `"}`, nil, 413},
		{"over-long Idempotency-Key", path, "application/json", `{}`, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 400},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, f.doT(t, "POST", tc.path, tc.ct, tc.body, tc.headers...), tc.status)
		})
	}
	q, err = amqptest.Inspect(t, admin, rabbit.QueueName(id))
	require.NoError(t, err)
	assert.Equal(t, 3, q.Messages, "rejected messages are not published")
}

// Client-chosen ids never reach AMQP unchecked: a 300-byte X-Request-ID used to become
// the correlation_id, fail the frame and close the publisher connection every tenant
// shares.
func TestHostileIDsNeverReachTheBroker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	attacker := f.createTenant("ids-a-"+uuid.NewString()[:8], 1)
	victim := f.createTenant("ids-v-"+uuid.NewString()[:8], 1)
	long := strings.Repeat("r", 300)
	for _, h := range [][]string{
		{"X-Request-ID", long},
		{"X-Correlation-ID", long},
		{"X-Request-ID", long, "X-Correlation-ID", long},
	} {
		r := f.json("POST", "/tenants/"+attacker+"/messages", `{"a":1}`, h...)
		require.Equal(t, http.StatusAccepted, r.status, r.raw)
		assert.NotEqual(t, long, r.header.Get("X-Request-ID"), "an invalid request id is replaced")
		r = f.json("POST", "/tenants/"+victim+"/messages", `{"v":1}`)
		require.Equal(t, http.StatusAccepted, r.status, "another tenant's publish right after: %s", r.raw)
	}
	admin := amqptest.Dial(t)
	ch, err := admin.Channel()
	require.NoError(t, err)
	defer ch.Close()
	for range 3 {
		d, ok, err := ch.Get(rabbit.QueueName(attacker), true)
		require.NoError(t, err)
		require.True(t, ok)
		assert.LessOrEqual(t, len(d.CorrelationId), httpserver.MaxIDLength)
		assert.NotEmpty(t, d.CorrelationId, "the request id stands in")
	}
}

func TestBrokerDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	r := f.json("POST", "/tenants", `{"name":"offline"}`)
	requireProblem(t, r, http.StatusServiceUnavailable)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.NotContains(t, r.raw, "127.0.0.1", "broker details stay in the log")
	assert.Equal(t, 0, f.env.EventCount(t), "no event without a queue")

	// A tenant recorded while the broker was up: publishing now answers 503 at once.
	id := uuid.NewString()
	env, err := events.NewEnvelope(id, 1, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now().UTC()}, events.TenantCreated{Name: "earlier", Workers: 1})
	require.NoError(t, err)
	_, err = f.env.Store.Append(t.Context(), []events.Envelope{env}, nil)
	require.NoError(t, err)
	requireProblem(t, f.json("POST", "/tenants/"+id+"/messages", `{"a":1}`), http.StatusServiceUnavailable)
}

func TestSwagger(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	r := f.do("GET", "/swagger/doc.json", "", "")
	require.Equal(t, http.StatusOK, r.status)
	paths, _ := r.body["paths"].(map[string]any)
	for _, p := range []string{"/tenants", "/tenants/{id}", "/tenants/{id}/config/concurrency", "/tenants/{id}/config/rate-limit", "/tenants/{id}/messages", "/tenants/{id}/credentials",
		"/tenants/{id}/pause", "/tenants/{id}/resume", "/tenants/{id}/dead-letters/redrive", "/tenants/{id}/dead-letters"} {
		assert.Contains(t, paths, p)
	}
	r = f.do("GET", "/swagger/index.html", "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.raw, "swagger")
}

func TestGuardsRunBeforeHandlers(t *testing.T) {
	t.Parallel()
	allowed := uuid.NewString()
	f := newGuardedFixture(t, false, httpapi.Guards{
		Admin: func(c *fiber.Ctx) error {
			if c.Get("X-Role") != "admin" {
				return httpserver.NewProblem(http.StatusForbidden, "forbidden", "admin only")
			}
			return c.Next()
		},
		TenantAccess: func(c *fiber.Ctx, id string) error {
			if id != allowed {
				return auth.TenantNotFound()
			}
			return nil
		},
	})
	requireProblem(t, f.json("POST", "/tenants", `{"name":"guarded"}`), http.StatusForbidden)
	requireProblem(t, f.json("PUT", "/tenants/"+allowed+"/config/concurrency", `{"workers":2}`), http.StatusForbidden)
	requireProblem(t, f.json("PUT", "/tenants/"+allowed+"/config/rate-limit", `{"per_second":0}`), http.StatusForbidden)
	requireProblem(t, f.do("DELETE", "/tenants/"+allowed, "", ""), http.StatusForbidden)
	requireProblem(t, f.do("POST", "/tenants/"+allowed+"/credentials", "", ""), http.StatusForbidden)
	requireProblem(t, f.do("POST", "/tenants/"+allowed+"/pause", "", ""), http.StatusForbidden)
	requireProblem(t, f.do("POST", "/tenants/"+allowed+"/resume", "", ""), http.StatusForbidden)
	requireProblem(t, f.do("DELETE", "/tenants/"+allowed+"?drain=true", "", ""), http.StatusForbidden)
	requireProblem(t, f.json("POST", "/tenants/"+allowed+"/dead-letters/redrive", `{"max":1}`), http.StatusForbidden)
	requireProblem(t, f.json("DELETE", "/tenants/"+allowed+"/dead-letters", `{"max":1}`), http.StatusForbidden)
	// A foreign tenant gets 404 whatever it sends, even a malformed body.
	requireProblem(t, f.json("POST", "/tenants/"+uuid.NewString()+"/messages", `{"a":`), http.StatusNotFound)
	// Past the guards the handlers run as usual.
	requireProblem(t, f.json("POST", "/tenants", `{"name":""}`, "X-Role", "admin"), http.StatusUnprocessableEntity)
	requireProblem(t, f.json("POST", "/tenants/"+allowed+"/messages", `{"a":`), http.StatusBadRequest)
	assert.Equal(t, 0, f.env.EventCount(t))
}
