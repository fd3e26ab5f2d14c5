//go:build integration

package tenants_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/tenants"
)

// countingQuerier counts the statements a report sends and can fail them.
type countingQuerier struct {
	tenants.Querier
	queries int
	fail    error
}

func (q *countingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	q.queries++
	if q.fail != nil {
		return nil, q.fail
	}
	return q.Querier.Query(ctx, sql, args...)
}

func sample(id uuid.UUID, ready, unacked int64, lag float64, at time.Time) tenants.BacklogSample {
	return tenants.BacklogSample{TenantID: id, Backlog: tenants.Backlog{Ready: ready, Unacked: unacked, LagSeconds: lag, SampledAt: at}}
}

// A pass writes only the samples that changed or whose last write is Refresh old, all
// of them with one statement, and none at all when nothing is due; only existing
// worker reports are updated; a failed pass is retried whole.
func TestBacklogReportWritesWhenChanged(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	a, b, c, late := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	for i, id := range []uuid.UUID{a, b, c, late} {
		apply(t, db.Pool, int64(i+1), record(t, id, 1, t0, events.TenantCreated{Name: id.String(), Workers: 1}))
	}
	for _, id := range []uuid.UUID{a, b, c} {
		require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 1, Owner: true}))
	}
	backlog := func(id uuid.UUID) *tenants.Backlog {
		t.Helper()
		got, err := tenants.Get(ctx, db.Pool, id)
		require.NoError(t, err)
		return got.Backlog
	}
	require.Nil(t, backlog(a), "no backlog before the first sample")

	q := &countingQuerier{Querier: db.Pool}
	r := tenants.NewBacklogReporter(30 * time.Second)
	report := func(wantWritten, wantQueries int, pass ...tenants.BacklogSample) {
		t.Helper()
		before := q.queries
		n, err := r.Report(ctx, q, pass)
		require.NoError(t, err)
		require.Equal(t, wantWritten, n, "rows written")
		require.Equal(t, wantQueries, q.queries-before, "statements sent")
	}

	// The first pass writes every tenant with a row, in one statement; the tenant whose
	// worker report is not there yet gets no row.
	report(3, 1, sample(a, 5, 2, 1.5, t0), sample(b, 0, 0, 0, t0), sample(c, 0, 0, 0, t0), sample(late, 7, 0, 0, t0))
	require.Equal(t, &tenants.Backlog{Ready: 5, Unacked: 2, LagSeconds: 1.5, SampledAt: t0}, backlog(a))
	require.Equal(t, &tenants.Backlog{SampledAt: t0}, backlog(b))
	require.Nil(t, backlog(late))
	var rows int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_workers WHERE tenant_id = $1`, late).Scan(&rows))
	require.Zero(t, rows, "a sample never creates the row")

	// Its row appears: the next pass writes it although its sample did not change.
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: late, Replica: "replica-a", Current: 1, Owner: true}))
	report(1, 1, sample(a, 5, 2, 1.5, t0.Add(2*time.Second)), sample(b, 0, 0, 0, t0.Add(2*time.Second)),
		sample(c, 0, 0, 0, t0.Add(2*time.Second)), sample(late, 7, 0, 0, t0.Add(2*time.Second)))
	require.Equal(t, int64(7), backlog(late).Ready)

	// Idle: nothing changed, nothing is old: no statement at all.
	at := t0.Add(4 * time.Second)
	report(0, 0, sample(a, 5, 2, 1.5, at), sample(b, 0, 0, 0, at), sample(c, 0, 0, 0, at), sample(late, 7, 0, 0, at))
	require.Equal(t, t0, backlog(a).SampledAt, "an unchanged sample is not rewritten")

	// Any one value changing is written, the others stay.
	at = t0.Add(6 * time.Second)
	report(3, 1, sample(a, 6, 2, 1.5, at), sample(b, 0, 1, 0, at), sample(c, 0, 0, 0.25, at), sample(late, 7, 0, 0, at))
	require.Equal(t, &tenants.Backlog{Ready: 6, Unacked: 2, LagSeconds: 1.5, SampledAt: at}, backlog(a))
	require.Equal(t, &tenants.Backlog{Unacked: 1, SampledAt: at}, backlog(b))
	require.Equal(t, &tenants.Backlog{LagSeconds: 0.25, SampledAt: at}, backlog(c))
	require.Equal(t, t0.Add(2*time.Second), backlog(late).SampledAt)

	// 30 s after its last write an unchanged sample is written again (sampled_at stays
	// fresh); the tenants written later are not due yet.
	at = t0.Add(32 * time.Second)
	report(1, 1, sample(a, 6, 2, 1.5, at), sample(b, 0, 1, 0, at), sample(c, 0, 0, 0.25, at), sample(late, 7, 0, 0, at))
	require.Equal(t, at, backlog(late).SampledAt)
	require.Equal(t, t0.Add(6*time.Second), backlog(a).SampledAt)

	// A failed statement remembers nothing: the next pass writes the same samples.
	at = t0.Add(34 * time.Second)
	q.fail = errors.New("database away")
	_, err := r.Report(ctx, q, []tenants.BacklogSample{sample(a, 9, 0, 0, at), sample(b, 0, 1, 0, at)})
	require.ErrorIs(t, err, q.fail)
	q.fail = nil
	require.Equal(t, int64(6), backlog(a).Ready)
	report(1, 1, sample(a, 9, 0, 0, at), sample(b, 0, 1, 0, at), sample(c, 0, 0, 0.25, at), sample(late, 7, 0, 0, at))
	require.Equal(t, int64(9), backlog(a).Ready)

	// A tenant missing from a pass is forgotten (removed tenants do not pile up in
	// memory): when it comes back, its sample is written again.
	at = t0.Add(35 * time.Second) // b was last written at 6 s: not due yet
	report(0, 0, sample(a, 9, 0, 0, at), sample(b, 0, 1, 0, at), sample(late, 7, 0, 0, at))
	report(1, 1, sample(a, 9, 0, 0, at), sample(b, 0, 1, 0, at), sample(c, 0, 0, 0.25, at), sample(late, 7, 0, 0, at))
	require.Equal(t, at, backlog(c).SampledAt)

	// A removed tenant's late sample does not bring its row back.
	require.NoError(t, tenants.ForgetWorkers(ctx, db.Pool, b))
	report(0, 1, sample(b, 3, 0, 0, t0.Add(40*time.Second)))
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM tenant_workers WHERE tenant_id = $1`, b).Scan(&rows))
	require.Zero(t, rows)
}

// Another reporter's older sample never overwrites a newer one, and values a reader
// could not use are stored as 0 (negative counts, NaN or infinite lag).
func TestBacklogReportKeepsNewestAndCleans(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	id, other := uuid.New(), uuid.New()
	apply(t, db.Pool, 1, record(t, id, 1, t0, events.TenantCreated{Name: "a", Workers: 1}))
	apply(t, db.Pool, 2, record(t, other, 1, t0, events.TenantCreated{Name: "b", Workers: 1}))
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: id, Replica: "replica-a", Current: 1, Owner: true}))
	require.NoError(t, tenants.ReportWorkers(ctx, db.Pool, tenants.WorkerReport{Tenant: other, Replica: "replica-a", Current: 1, Owner: true}))

	n, err := tenants.NewBacklogReporter(time.Minute).Report(ctx, db.Pool, []tenants.BacklogSample{sample(id, 4, 0, 0, t0.Add(time.Second))})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = tenants.NewBacklogReporter(time.Minute).Report(ctx, db.Pool, []tenants.BacklogSample{sample(id, 8, 0, 0, t0)})
	require.NoError(t, err)
	require.Zero(t, n, "an older sample is not written")
	got, err := tenants.Get(ctx, db.Pool, id)
	require.NoError(t, err)
	require.Equal(t, int64(4), got.Backlog.Ready)

	local := time.Date(2025, 3, 4, 7, 6, 7, 123456789, time.FixedZone("x", 2*3600))
	r := tenants.NewBacklogReporter(time.Minute)
	n, err = r.Report(ctx, db.Pool, []tenants.BacklogSample{sample(other, -1, -2, math.NaN(), local)})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = tenants.Get(ctx, db.Pool, other)
	require.NoError(t, err)
	require.Equal(t, &tenants.Backlog{SampledAt: local.UTC().Truncate(time.Microsecond)}, got.Backlog)
	// What it remembers equals what was stored: the same sample again is not due.
	n, err = r.Report(ctx, db.Pool, []tenants.BacklogSample{sample(other, -1, -2, math.Inf(1), local)})
	require.NoError(t, err)
	require.Zero(t, n)

	// Lists show the same backlog as Get.
	list, _, err := tenants.List(ctx, db.Pool, nil, 10, tenants.AllTenants())
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, tn := range list {
		require.NotNil(t, tn.Backlog, tn.ID)
	}
}
