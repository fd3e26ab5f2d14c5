//go:build integration

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build query:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func command(env map[string]string, args ...string) (*exec.Cmd, *lockedBuffer) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

func appendEvent(t *testing.T, store *eventstore.Store, id uuid.UUID, version int, e events.Event) {
	t.Helper()
	env, err := events.NewEnvelope(id.String(), version, events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now()}, e)
	require.NoError(t, err)
	_, err = store.Append(context.Background(), []events.Envelope{env}, nil)
	require.NoError(t, err)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
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
		cmd, out := command(env, "-replay")
		require.NoError(t, cmd.Run(), out.String())
		require.Contains(t, out.String(), "replay done")
	}
	got := dump()
	require.Contains(t, got, a.String()+"|a|active|6|2|")
	require.Contains(t, got, b.String()+"|b|deleted|3|2|")
	require.True(t, strings.HasSuffix(got, "#4"), got)

	cmd, out := command(map[string]string{"DATABASE_URL": db.URL, "REPLAY_BATCH": "0"}, "-replay")
	err := cmd.Run()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "bad config must fail: %v", err)
	require.Contains(t, out.String(), "REPLAY_BATCH")
	require.Equal(t, got, dump(), "a failed start changes nothing")
}

func TestServe(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	sqlDB := postgres.OpenDB(db.Pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	store := eventstore.New(sqlDB, watermill.NopLogger{})
	addr := freeAddr(t)
	base := "http://" + addr
	cmd, out := command(map[string]string{
		"DATABASE_URL":     db.URL,
		"RABBITMQ_URL":     amqptest.URL(t),
		"HTTP_ADDR":        addr,
		"CURSOR_SECRET":    "serve-test",
		"SHUTDOWN_TIMEOUT": "10s",
	})
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	require.Eventually(t, func() bool { s, _ := get(t, base+"/readyz"); return s == http.StatusOK },
		15*time.Second, 50*time.Millisecond, "ready; output:\n%s", out)

	// A tenant created in the event store shows up through the projection.
	id := uuid.New()
	appendEvent(t, store, id, 1, events.TenantCreated{Name: "acme", Workers: 3})
	require.Eventually(t, func() bool { s, _ := get(t, base+"/tenants/"+id.String()); return s == http.StatusOK },
		5*time.Second, 20*time.Millisecond)
	// workers.current follows the consumer's report.
	_, err := db.Pool.Exec(context.Background(), `INSERT INTO tenant_workers (tenant_id, current) VALUES ($1, 3)`, id)
	require.NoError(t, err)
	_, body := get(t, base+"/tenants/"+id.String())
	require.Contains(t, body, `"workers":{"desired":3,"current":3}`)
	appendEvent(t, store, id, 2, events.TenantConcurrencyChanged{Workers: 5, PreviousWorkers: 3})
	_, err = db.Pool.Exec(context.Background(), `UPDATE tenant_workers SET current = 5 WHERE tenant_id = $1`, id)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, body := get(t, base+"/tenants/"+id.String())
		return strings.Contains(body, `"workers":{"desired":5,"current":5}`)
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

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "clean exit on SIGTERM; output:\n%s", out)
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM; output:\n%s", out)
	}
	exited <- nil // for the cleanup
}
