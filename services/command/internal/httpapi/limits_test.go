//go:build integration

package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/commandtest"
	"github.com/multitenant/mtm/services/command/internal/ratelimit"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// fakeClock is the limiter's time: it stands still unless the test moves it, so how
// many publishes a bucket admits does not depend on how fast the machine is.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// publishAll sends n publishes to tenant over conc connections at once and returns
// the answers by status; it checks every 429 on the way.
func (f *fixture) publishAll(t *testing.T, tenantID string, n, conc int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	next := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, err := send(t.Context(), f.base, "POST", "/tenants/"+tenantID+"/messages", "application/json", fmt.Sprintf(`{"n":%d}`, i))
				if !assert.NoError(t, err) {
					continue
				}
				if r.status == http.StatusTooManyRequests {
					// assert, not require: this is not the test's goroutine.
					assert.Equal(t, httpserver.ProblemContentType, r.header.Get("Content-Type"))
					assert.Equal(t, "rate_limited", r.body["code"], r.raw)
					assert.EqualValues(t, http.StatusTooManyRequests, r.body["status"], r.raw)
					assert.Equal(t, "1", r.header.Get("Retry-After"), "whole seconds, at least 1")
				}
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return statuses
}

func (f *fixture) queued(t *testing.T, tenantID string) int {
	t.Helper()
	q, err := amqptest.Inspect(t, amqptest.Dial(t), rabbit.QueueName(tenantID))
	require.NoError(t, err)
	return q.Messages
}

// One tenant flooding the ingest path is held to its bucket (429 with Retry-After,
// nothing published), while another tenant publishing at the same time gets every
// message through; a rate limit of the tenant's own replaces the default.
func TestTenantFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	limits := commandtest.Limits
	limits.DefaultRate = tenant.RateLimit{PerSecond: 10, Burst: 20}
	f := newFixtureWith(t, fixtureOptions{brokerUp: true, limits: &limits, limiter: ratelimit.New(100, clock.now)})
	flood := f.createTenant("flood-"+uuid.NewString()[:8], 1)
	quiet := f.createTenant("quiet-"+uuid.NewString()[:8], 1)

	var floodAnswers, quietAnswers map[int]int
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); floodAnswers = f.publishAll(t, flood, 200, 32) }()
	go func() { defer wg.Done(); quietAnswers = f.publishAll(t, quiet, 20, 4) }()
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusAccepted: 20, http.StatusTooManyRequests: 180}, floodAnswers, "the default burst, then 429")
	assert.Equal(t, map[int]int{http.StatusAccepted: 20}, quietAnswers, "the other tenant is not held back")
	assert.Equal(t, 20, f.queued(t, flood), "a refused message is not published")
	assert.Equal(t, 20, f.queued(t, quiet))

	// The bucket refills at the default rate: 0.5 s later, 5 more.
	clock.advance(500 * time.Millisecond)
	assert.Equal(t, map[int]int{http.StatusAccepted: 5, http.StatusTooManyRequests: 15}, f.publishAll(t, flood, 20, 4))

	// The tenant's own limit, recorded as an event, takes over at the next publish. The
	// change itself adds no token: the empty bucket refills at the new rate, up to the
	// new burst (the default would have given 10 in that second).
	r := f.json("PUT", "/tenants/"+flood+"/config/rate-limit", `{"per_second":1000,"burst":100}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[int]int{http.StatusTooManyRequests: 5}, f.publishAll(t, flood, 5, 1))
	clock.advance(time.Second)
	assert.Equal(t, map[int]int{http.StatusAccepted: 100, http.StatusTooManyRequests: 50}, f.publishAll(t, flood, 150, 16))

	// Unlimited: no bucket at all, even with the clock standing still.
	r = f.json("PUT", "/tenants/"+flood+"/config/rate-limit", `{"per_second":0}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[int]int{http.StatusAccepted: 60}, f.publishAll(t, flood, 60, 8))
	assert.Equal(t, 20+5+100+60, f.queued(t, flood))
}

func TestChangeRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	id := f.createTenant("rate-"+uuid.NewString()[:8], 1)
	path := "/tenants/" + id + "/config/rate-limit"

	r := f.json("PUT", path, `{"per_second":50,"burst":100}`, "If-Match", `"1"`, "X-Correlation-ID", "corr-rate")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "per_second": 50.0, "burst": 100.0, "version": 2.0}, r.body)
	assert.Equal(t, `"2"`, r.header.Get("ETag"))
	stored, err := f.env.Store.Load(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, stored, 2)
	assert.Equal(t, "tenant.rate_limit_changed.v1", stored[1].Type)
	assert.Equal(t, "corr-rate", stored[1].Metadata.CorrelationID)

	// The same limit again: 200, nothing recorded.
	r = f.json("PUT", path, `{"per_second":50,"burst":100}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.EqualValues(t, 2, r.body["version"])
	// Unlimited, burst omitted or 0.
	r = f.json("PUT", path, `{"per_second":0}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, map[string]any{"id": id, "per_second": 0.0, "burst": 0.0, "version": 3.0}, r.body)
	r = f.json("PUT", path, `{"per_second":0,"burst":0}`, "If-Match", `"3"`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.Equal(t, []int{1, 2, 3}, f.env.Versions(t, id))

	before := f.env.EventCount(t)
	bad := []struct {
		name    string
		ct      string
		body    string
		headers []string
		status  int
		field   string
	}{
		{"stale If-Match", "application/json", `{"per_second":5,"burst":5}`, []string{"If-Match", `"2"`}, 412, ""},
		{"per_second missing", "application/json", `{"burst":5}`, nil, 422, "per_second"},
		{"per_second negative", "application/json", `{"per_second":-1,"burst":5}`, nil, 422, "per_second"},
		{"per_second too large", "application/json", `{"per_second":1000001,"burst":5}`, nil, 422, "per_second"},
		{"per_second 1.5", "application/json", `{"per_second":1.5,"burst":5}`, nil, 422, "per_second"},
		{"per_second string", "application/json", `{"per_second":"5","burst":5}`, nil, 422, "per_second"},
		{"per_second null", "application/json", `{"per_second":null,"burst":5}`, nil, 422, "per_second"},
		{"burst missing", "application/json", `{"per_second":5}`, nil, 422, "burst"},
		{"burst 0", "application/json", `{"per_second":5,"burst":0}`, nil, 422, "burst"},
		{"burst too large", "application/json", `{"per_second":5,"burst":1000001}`, nil, 422, "burst"},
		{"burst 1e3", "application/json", `{"per_second":5,"burst":1e3}`, nil, 422, "burst"},
		{"burst when unlimited", "application/json", `{"per_second":0,"burst":5}`, nil, 422, "burst"},
		{"unknown field", "application/json", `{"per_second":5,"burst":5,"window":1}`, nil, 422, "window"},
		{"array", "application/json", `[]`, nil, 422, ""},
		{"malformed JSON", "application/json", `{"per_second":`, nil, 400, ""},
		{"not JSON", "text/plain", `per_second=5`, nil, 415, ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := f.doT(t, "PUT", path, tc.ct, tc.body, tc.headers...)
			requireProblem(t, r, tc.status)
			if tc.field != "" {
				errs, _ := r.body["errors"].([]any)
				require.NotEmpty(t, errs, r.raw)
				assert.Equal(t, tc.field, errs[0].(map[string]any)["field"], r.raw)
			}
		})
	}
	unknown := f.json("PUT", "/tenants/"+uuid.NewString()+"/config/rate-limit", `{"per_second":5,"burst":5}`)
	requireProblem(t, unknown, 404)
	assert.Equal(t, auth.CodeTenantNotFound, unknown.body["code"])
	requireProblem(t, f.json("PUT", "/tenants/not-a-uuid/config/rate-limit", `{"per_second":5,"burst":5}`), 404)
	assert.Equal(t, before, f.env.EventCount(t), "bad input writes no event")

	r = f.do("DELETE", "/tenants/"+id, "", "")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	requireProblem(t, f.json("PUT", path, `{"per_second":5,"burst":5}`), 404)
}

// MAX_TOTAL_WORKERS bounds the sum over live tenants, on creation and on resize; a
// refused command records nothing and leaves no queue behind.
func TestTenantCapacity(t *testing.T) {
	t.Parallel()
	limits := commandtest.Limits
	limits.MaxWorkers, limits.MaxTotalWorkers = 8, 10
	f := newFixtureWith(t, fixtureOptions{brokerUp: true, limits: &limits})
	a := f.createTenant("cap-a-"+uuid.NewString()[:8], 4)
	b := f.createTenant("cap-b-"+uuid.NewString()[:8], 4)

	before := f.env.EventCount(t)
	r := f.json("POST", "/tenants", `{"name":"cap-c","workers":3}`)
	requireProblem(t, r, http.StatusConflict)
	assert.Equal(t, "tenant_capacity_reached", r.body["code"])
	assert.Contains(t, r.body["detail"], "8 of the 10 workers")
	requireProblem(t, f.json("PUT", "/tenants/"+a+"/config/concurrency", `{"workers":7}`), http.StatusConflict)
	assert.Equal(t, before, f.env.EventCount(t))
	var names int
	require.NoError(t, f.env.DB.QueryRow(`SELECT count(*) FROM tenant_names`).Scan(&names))
	assert.Equal(t, 2, names, "the refused name is not taken")

	// What fits, fits exactly; shrinking always passes and makes room.
	r = f.json("PUT", "/tenants/"+a+"/config/concurrency", `{"workers":6}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	requireProblem(t, f.json("PUT", "/tenants/"+b+"/config/concurrency", `{"workers":5}`), http.StatusConflict)
	r = f.json("PUT", "/tenants/"+a+"/config/concurrency", `{"workers":1}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	f.createTenant("cap-c-"+uuid.NewString()[:8], 5)
	// A deleted tenant's workers are free again.
	r = f.do("DELETE", "/tenants/"+b, "", "")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	f.createTenant("cap-d-"+uuid.NewString()[:8], 4)
	requireProblem(t, f.json("POST", "/tenants", `{"name":"cap-e","workers":1}`), http.StatusConflict)
}

// MAX_TENANTS bounds the live tenants: one more is 409 tenant_capacity_reached with a
// detail naming the bound, and records nothing.
func TestTenantLimit(t *testing.T) {
	t.Parallel()
	limits := commandtest.Limits
	limits.MaxTenants = 2
	f := newFixtureWith(t, fixtureOptions{brokerUp: true, limits: &limits})
	f.createTenant("max-a-"+uuid.NewString()[:8], 1)
	b := f.createTenant("max-b-"+uuid.NewString()[:8], 1)

	before := f.env.EventCount(t)
	r := f.json("POST", "/tenants", `{"name":"max-c","workers":1}`)
	requireProblem(t, r, http.StatusConflict)
	assert.Equal(t, "tenant_capacity_reached", r.body["code"])
	assert.Contains(t, r.body["detail"], "at most 2 tenants (MAX_TENANTS) and 2 are live")
	assert.Equal(t, before, f.env.EventCount(t))
	var names int
	require.NoError(t, f.env.DB.QueryRow(`SELECT count(*) FROM tenant_names`).Scan(&names))
	assert.Equal(t, 2, names, "the refused name is not taken")

	r = f.do("DELETE", "/tenants/"+b, "", "")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	f.createTenant("max-c-"+uuid.NewString()[:8], 1)
}
