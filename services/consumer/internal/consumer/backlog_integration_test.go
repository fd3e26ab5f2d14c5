//go:build integration

package consumer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
)

// backlogRow is a tenant's backlog columns in tenant_workers.
type backlogRow struct {
	ready, unacked int64
	lag            float64
	sampledAt      time.Time
}

// backlogReported reads the tenant's backlog sample; ok is false without a row or
// before the first sample.
func (e *env) backlogReported(tenantID string) (b backlogRow, ok bool) {
	e.t.Helper()
	var ready, unacked *int64
	var lag *float64
	var at *time.Time
	err := e.db.Pool.QueryRow(context.Background(),
		`SELECT ready, unacked, lag_seconds, sampled_at FROM tenant_workers WHERE tenant_id = $1`, tenantID).
		Scan(&ready, &unacked, &lag, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return backlogRow{}, false
	}
	require.NoError(e.t, err)
	if at == nil {
		return backlogRow{}, false
	}
	return backlogRow{ready: *ready, unacked: *unacked, lag: *lag, sampledAt: *at}, true
}

// A paused tenant's queue fills and the sampler reports it: tenant_workers shows every
// published message ready within a few sampling passes, and after the resume the
// backlog goes back to nothing ready, nothing in flight, no lag.
func TestBacklogReportedWhilePaused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.startService(1 << 16)
	// The harness's usual 5 s bound: 25 sampling passes at its 200 ms ReconcileInterval.
	within := 25 * svc.cfg.ReconcileInterval
	id := e.createTenant(2)
	e.requireConsumers(id, 2)
	require.Eventually(t, func() bool {
		b, ok := e.backlogReported(id)
		return ok && b.ready == 0 && b.unacked == 0
	}, within, 20*time.Millisecond, "the first sample is reported")

	e.append(id, 2, events.TenantPaused{})
	e.requireConsumers(id, 0)
	const n = 137
	published := time.Now()
	e.publisher().publish(id, numbered(0, n)...)
	require.Eventually(t, func() bool { return e.ready(id) == n }, within, 20*time.Millisecond, "paused: every message waits in the queue")
	require.Eventually(t, func() bool {
		b, ok := e.backlogReported(id)
		return ok && b.ready == n
	}, within, 20*time.Millisecond, "tenant_workers shows the paused queue's backlog")
	b, _ := e.backlogReported(id)
	require.Zero(t, b.unacked, "nothing delivered while paused")
	require.False(t, b.sampledAt.Before(published.Add(-time.Second)), "sampled after the publish, got %s", b.sampledAt)
	require.WithinDuration(t, time.Now(), b.sampledAt, time.Minute)
	rows, _ := e.stored(id)
	require.Zero(t, rows)

	e.append(id, 3, events.TenantResumed{})
	e.requireStored(id, n)
	require.Eventually(t, func() bool {
		b, ok := e.backlogReported(id)
		return ok && b.ready == 0 && b.unacked == 0 && b.lag == 0
	}, within, 20*time.Millisecond, "a drained queue reports no backlog")
}
