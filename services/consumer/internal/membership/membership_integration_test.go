//go:build integration

package membership

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/tenants"
)

// A replica that stops heartbeating (killed) drops out of the others' view after the
// TTL, and its worker reports go with it; one that leaves drops out at once.
func TestExpiryAndLeave(t *testing.T) {
	db := pgtest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Heartbeat: 50 * time.Millisecond, TTL: 400 * time.Millisecond}
	a := New("replica-a", cfg, db.Pool, log)
	b := New("replica-b", cfg, db.Pool, log)
	c := New("replica-c", cfg, db.Pool, log)
	require.ErrorIs(t, a.Ready(context.Background()), ErrNoView)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bctx, killB := context.WithCancel(ctx)
	cctx, stopC := context.WithCancel(ctx)
	done := make(chan struct{}, 3)
	go func() { a.Run(ctx); done <- struct{}{} }()
	go func() { b.Run(bctx); done <- struct{}{} }()
	go func() { c.Run(cctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done; <-done }()

	live := func(m *Membership) []string { v, _ := m.View(); return v.Replicas }
	require.Eventually(t, func() bool { return len(live(a)) == 3 && len(live(c)) == 3 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, a.Ready(context.Background()))

	tenant := uuid.New()
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: tenant, Replica: "replica-b", Current: 2, Owner: true}))

	// b stops beating, as if killed: gone after the TTL, its report with it.
	killB()
	killedAt := time.Now()
	require.Eventually(t, func() bool { return len(live(a)) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(killedAt), cfg.TTL-cfg.Heartbeat, "not before the TTL")
	require.Equal(t, []string{"replica-a", "replica-c"}, live(a))
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_replica_workers WHERE replica_id = 'replica-b'`).Scan(&n))
	require.Zero(t, n)

	// c leaves gracefully (it stops beating first, as the service does): gone at a's
	// next heartbeat.
	stopC()
	require.NoError(t, c.Leave(ctx))
	require.Eventually(t, func() bool { return len(live(a)) == 1 }, 10*cfg.Heartbeat, 5*time.Millisecond)
}

// After an outage of the database longer than the TTL, a replica back first does not
// take everything: it keeps the replicas it knew for one more TTL (they come back in
// that time), then forgets those that did not.
func TestNoTakeOverStormAfterDatabaseOutage(t *testing.T) {
	db := pgtest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Heartbeat: 50 * time.Millisecond, TTL: 500 * time.Millisecond}
	a := New("replica-a", cfg, db.Pool, log)
	ctx := context.Background()
	// a knew b, and both heartbeats went stale while the database was away.
	_, err := db.Pool.Exec(ctx, `INSERT INTO consumer_replicas (replica_id, heartbeat_at) VALUES ('replica-a', now() - interval '1 hour'), ('replica-b', now() - interval '1 hour')`)
	require.NoError(t, err)
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: uuid.New(), Replica: "replica-b", Current: 1, Owner: true}))
	a.view, a.beats = View{Replicas: []string{"replica-a", "replica-b"}}, 2
	a.lastBeat = time.Now().Add(-time.Hour)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(runCtx) }()
	defer func() { stop(); <-done }()

	back := time.Now()
	reports := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_replica_workers WHERE replica_id = 'replica-b'`).Scan(&n))
		return n
	}
	// Within the grace b is still in a's view and its report is kept.
	require.Never(t, func() bool {
		v, _ := a.View()
		return len(v.Replicas) != 2 || reports() != 1
	}, cfg.TTL-2*cfg.Heartbeat, 20*time.Millisecond)
	// b never came back: gone after the grace and one more TTL at most.
	require.Eventually(t, func() bool { v, _ := a.View(); return len(v.Replicas) == 1 }, 3*cfg.TTL, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(back), cfg.TTL)
	require.Zero(t, reports())
}
