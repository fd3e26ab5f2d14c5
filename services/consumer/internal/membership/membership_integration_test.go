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
