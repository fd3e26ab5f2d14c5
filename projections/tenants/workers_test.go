//go:build integration

package tenants_test

import (
	"context"
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

	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, id, 3))
	require.Equal(t, 3, current())
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, id, 1))
	require.Equal(t, 1, current(), "a report replaces the last one")
	// A report may come before the projection knows the tenant.
	early := uuid.New()
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, early, 2))

	require.NoError(t, tenants.ForgetWorkers(ctx, db.Pool, id))
	require.NoError(t, tenants.ForgetWorkers(ctx, db.Pool, id))
	require.Zero(t, current())
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_workers`).Scan(&n))
	require.Equal(t, 1, n, "only the other tenant's report is left")
}
