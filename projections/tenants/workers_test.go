//go:build integration

package tenants_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/tenants"
)

// The consumer's report is what readers see as workers.current: each report replaces
// the last, and forgetting it (twice is fine) brings the reader back to 0.
func TestReportAndForgetWorkers(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	id := uuid.New()
	apply(t, db.Pool, 1, record(t, id, 1, time.Now(), events.TenantCreated{Name: "a", Workers: 3}))
	current := func() int {
		t.Helper()
		got, err := tenants.Get(ctx, db.Pool, id)
		require.NoError(t, err)
		return got.WorkersCurrent
	}
	require.Zero(t, current(), "0 before the first report")

	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 3, Owner: true}))
	require.Equal(t, 3, current())
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 1, Owner: true}))
	require.Equal(t, 1, current(), "a report replaces the last one")
	// A report may come before the projection knows the tenant.
	early := uuid.New()
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: early, Replica: "replica-a", Current: 2, Owner: true}))

	require.NoError(t, tenants.ForgetWorkers(ctx, db.Pool, id))
	require.NoError(t, tenants.ForgetWorkers(ctx, db.Pool, id))
	require.Zero(t, current())
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_workers`).Scan(&n))
	require.Equal(t, 1, n, "only the other tenant's report is left")
}

// Replicas report separately and readers see the sum; a hand-over's 0 report from the
// old owner leaves the new owner's count, and forgetting a replica that died takes its
// share out and clears it as owner.
func TestWorkersSumOverReplicas(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	id := uuid.New()
	apply(t, db.Pool, 1, record(t, id, 1, time.Now(), events.TenantCreated{Name: "a", Workers: 3}))
	get := func() tenants.Tenant {
		t.Helper()
		got, err := tenants.Get(ctx, db.Pool, id)
		require.NoError(t, err)
		return got
	}
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 3, Owner: true}))
	// The new owner starts before the old one stopped: briefly 6 consumers.
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-b", Current: 3, Owner: true}))
	got := get()
	require.Equal(t, 6, got.WorkersCurrent)
	require.Equal(t, "replica-b", got.Owner)
	require.Equal(t, []string{"replica-a", "replica-b"}, got.Replicas)
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 0}))
	got = get()
	require.Equal(t, 3, got.WorkersCurrent)
	require.Equal(t, "replica-b", got.Owner, "a non-owner's report leaves the owner")
	require.Equal(t, []string{"replica-b"}, got.Replicas)

	// replica-b dies: forgetting it leaves 0 and no owner until the next owner reports.
	n, err := tenants.ForgetReplicas(ctx, db.Pool, []string{"replica-b"})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got = get()
	require.Zero(t, got.WorkersCurrent)
	require.Empty(t, got.Owner)
	require.Empty(t, got.Replicas)
	n, err = tenants.ForgetReplicas(ctx, db.Pool, []string{"replica-b"})
	require.NoError(t, err)
	require.Zero(t, n, "idempotent")

	// A 0 report of a removed tenant never brings its row back.
	require.NoError(t, tenants.ForgetWorkers(ctx, db.Pool, id))
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 0}))
	var rows int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_workers WHERE tenant_id = $1`, id).Scan(&rows))
	require.Zero(t, rows)
}

// Reports racing from many replicas never lose one another's counts: every writer
// locks the tenant's summary row before summing.
func TestConcurrentReportsSumExactly(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	id := uuid.New()
	apply(t, db.Pool, 1, record(t, id, 1, time.Now(), events.TenantCreated{Name: "a", Workers: 3}))
	var wg sync.WaitGroup
	errs := make(chan error, 8*21)
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				errs <- tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: fmt.Sprintf("replica-%d", r), Current: 1 + (i+r)%3})
			}
			// The last report of each replica is 2.
			errs <- tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: fmt.Sprintf("replica-%d", r), Current: 2})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := tenants.Get(ctx, db.Pool, id)
	require.NoError(t, err)
	require.Equal(t, 16, got.WorkersCurrent)
	require.Len(t, got.Replicas, 8)
}
