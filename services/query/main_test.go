//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/proctest"
	"github.com/multitenant/mtm/projections/tenants"
)

// bin is the query binary built once for these tests: they exercise main's wiring
// (flags, configuration, routes, projection, shutdown) as an operator runs it.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mtm-query-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "query")
	if err := proctest.Build(dir, "."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func appendEvent(t *testing.T, store *eventstore.Store, id uuid.UUID, version int, e events.Event) {
	t.Helper()
	env, err := events.NewEnvelope(id.String(), version, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now()}, e)
	require.NoError(t, err)
	_, err = store.Append(context.Background(), []events.Envelope{env}, nil)
	require.NoError(t, err)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReplayFlag(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	sqlDB := postgres.OpenDB(db.Pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	store := eventstore.New(sqlDB, watermill.NopLogger{})
	a, b := uuid.New(), uuid.New()
	appendEvent(t, store, a, 1, events.TenantCreated{Name: "a", Workers: 2})
	appendEvent(t, store, b, 1, events.TenantCreated{Name: "b", Workers: 3})
	appendEvent(t, store, a, 2, events.TenantConcurrencyChanged{Workers: 6, PreviousWorkers: 2})
	appendEvent(t, store, b, 2, events.TenantDeleted{Name: "b"})

	env := map[string]string{"DATABASE_URL": db.URL, "REPLAY_BATCH": "3"}
	dump := func() string {
		var s string
		require.NoError(t, db.Pool.QueryRow(context.Background(), `
			SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, name, status, workers_desired, version, created_at, updated_at), ';' ORDER BY id), '')
			|| '#' || coalesce((SELECT position::text FROM projection_checkpoints WHERE name = 'tenants'), '')
			FROM tenants`).Scan(&s))
		return s
	}
	for range 2 {
		code, out := proctest.Run(t, bin, env, "-replay")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "replay done")
	}
	got := dump()
	require.Contains(t, got, a.String()+"|a|active|6|2|")
	require.Contains(t, got, b.String()+"|b|deleted|3|2|")
	require.True(t, strings.HasSuffix(got, "#4"), got)

	code, out := proctest.Run(t, bin, map[string]string{"DATABASE_URL": db.URL, "REPLAY_BATCH": "0"}, "-replay")
	require.NotEqual(t, 0, code, "bad config must fail: %s", out)
	require.Contains(t, out, "REPLAY_BATCH")
	require.Equal(t, got, dump(), "a failed start changes nothing")
}

func TestServe(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	sqlDB := postgres.OpenDB(db.Pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	store := eventstore.New(sqlDB, watermill.NopLogger{})
	p := proctest.Start(t, bin, "", map[string]string{
		"DATABASE_URL":     db.URL,
		"RABBITMQ_URL":     amqptest.URL(t),
		"CURSOR_SECRET":    "serve-test",
		"SHUTDOWN_TIMEOUT": "10s",
	})
	base := p.URL()
	require.Eventually(t, func() bool { s, _ := get(t, base+"/readyz"); return s == http.StatusOK },
		15*time.Second, 50*time.Millisecond, "ready; output:\n%s", p.Output())

	// A tenant created in the event store shows up through the projection.
	id := uuid.New()
	appendEvent(t, store, id, 1, events.TenantCreated{Name: "acme", Workers: 3})
	require.Eventually(t, func() bool { s, _ := get(t, base+"/tenants/"+id.String()); return s == http.StatusOK },
		5*time.Second, 20*time.Millisecond)
	// workers.current follows the consumer's report.
	err := tenants.ReportWorkers(context.Background(), db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 3, Owner: true})
	require.NoError(t, err)
	_, body := get(t, base+"/tenants/"+id.String())
	require.Contains(t, body, `"workers":{"desired":3,"current":3,"owner":"replica-a","replicas":["replica-a"]}`)
	appendEvent(t, store, id, 2, events.TenantConcurrencyChanged{Workers: 5, PreviousWorkers: 3})
	err = tenants.ReportWorkers(context.Background(), db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 5, Owner: true})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, body := get(t, base+"/tenants/"+id.String())
		return strings.Contains(body, `"workers":{"desired":5,"current":5,"owner":"replica-a","replicas":["replica-a"]}`)
	}, 5*time.Second, 20*time.Millisecond)

	status, body := get(t, base+"/swagger/index.html")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "swagger")
	status, body = get(t, base+"/swagger/doc.json")
	require.Equal(t, http.StatusOK, status)
	for _, p := range []string{`"/tenants"`, `"/tenants/{id}"`, `"/messages"`, `"/tenants/{id}/messages"`} {
		require.Contains(t, body, p)
	}

	// The gauge is refreshed every second and after each event; it settles at 0.
	require.Eventually(t, func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, "\nquery_projection_lag_events 0\n")
	}, 5*time.Second, 50*time.Millisecond)
	status, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `http_request_duration_seconds_count{method="GET",route="/tenants/:id",status="200"}`)

	code, _ := p.Terminate(t, 15*time.Second)
	require.Equal(t, 0, code, "clean exit on SIGTERM; output:\n%s", p.Output())
}
