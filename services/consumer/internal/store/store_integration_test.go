//go:build integration

package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/messages"
)

func row(tenant uuid.UUID, payload string) messages.Row {
	return messages.Row{TenantID: tenant, ID: uuid.New(), Payload: []byte(payload), CreatedAt: time.Now()}
}

// One flush holding several callers' rows sorts out every row on its own: a tenant
// whose partition is missing but may be created gets it, a tenant that may not is
// refused with ErrNoPartition, a payload jsonb refuses is ErrInvalidRow, a repeat is
// reported as not inserted, and everything else is stored.
func TestStoreBatchAnswersEveryRow(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	live, late, gone := uuid.New(), uuid.New(), uuid.New()
	require.NoError(t, messages.EnsurePartition(ctx, db.Pool, live.String()))
	var ensured sync.Map
	w := New(Config{
		Pool:     db.Pool,
		Flushers: 1,
		EnsurePartition: func(ctx context.Context, tenantID string) error {
			ensured.Store(tenantID, true)
			if tenantID == gone.String() {
				return fmt.Errorf("%w: tenant is deleted", ErrNoPartition)
			}
			return messages.EnsurePartition(ctx, db.Pool, tenantID)
		},
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	first := row(live, `{"n":1}`)
	require.NoError(t, w.Store(ctx, first).Err)

	batch := []messages.Row{
		row(live, `{"n":2}`),
		first, // already stored
		row(late, `{"n":3}`),
		row(gone, `{"n":4}`),
		row(live, `{"bad":"\u0000"}`), // valid JSON, but jsonb refuses NUL
		row(live, `{"n":5}`),
	}
	// A second caller at the same time, so both requests can share a flush.
	var other []Result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); other = w.StoreBatch(ctx, []messages.Row{row(late, `{"n":6}`)}) }()
	res := w.StoreBatch(ctx, batch)
	wg.Wait()

	require.Len(t, res, len(batch))
	require.Equal(t, Result{Inserted: true}, res[0])
	require.Equal(t, Result{Inserted: false}, res[1])
	require.Equal(t, Result{Inserted: true}, res[2])
	require.ErrorIs(t, res[3].Err, ErrNoPartition)
	require.ErrorIs(t, res[4].Err, ErrInvalidRow)
	require.Equal(t, Result{Inserted: true}, res[5])
	require.Equal(t, []Result{{Inserted: true}}, other)
	_, asked := ensured.Load(late.String())
	require.True(t, asked, "the missing partition was ensured")

	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n))
	require.Equal(t, 5, n, fmt.Sprintf("stored: first, n2, n3, n5, n6; got %d", n))
}

// A caller whose ctx ends while its rows wait gets ctx's error for every row.
func TestStoreBatchGivesUpWithCtx(t *testing.T) {
	t.Parallel()
	w := New(Config{}) // never run: nothing is taken from the queue
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	res := w.StoreBatch(ctx, []messages.Row{row(uuid.New(), `{}`), row(uuid.New(), `{}`)})
	require.Len(t, res, 2)
	for _, r := range res {
		require.ErrorIs(t, r.Err, context.DeadlineExceeded)
	}
}

// runWriter runs w until the test ends.
func runWriter(t *testing.T, w *Writer) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
}

// A transient failure while repairing a missing partition is retried in place: the
// row is stored, never refused (which would requeue the delivery).
func TestPartitionRepairRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	late := uuid.New()
	var calls, retries atomic.Int64
	w := New(Config{
		Pool:     db.Pool,
		Flushers: 1,
		EnsurePartition: func(ctx context.Context, tenantID string) error {
			if calls.Add(1) <= 2 {
				return errors.New("connection reset by peer")
			}
			return messages.EnsurePartition(ctx, db.Pool, tenantID)
		},
		OnRetry: func(error) { retries.Add(1) },
	})
	runWriter(t, w)

	res := w.Store(ctx, row(late, `{"n":1}`))
	require.NoError(t, res.Err)
	require.True(t, res.Inserted)
	require.EqualValues(t, 3, calls.Load())
	require.GreaterOrEqual(t, retries.Load(), int64(2))
}

// One row jsonb refuses among 1000 is found by bisection, not one row per round trip.
func TestIsolateBisects(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenant := uuid.New()
	require.NoError(t, messages.EnsurePartition(ctx, db.Pool, tenant.String()))
	w := New(Config{Pool: db.Pool, Flushers: 1, MaxBatch: 1000})
	runWriter(t, w)

	const n, bad = 1000, 637
	rows := make([]messages.Row, n)
	for i := range rows {
		rows[i] = row(tenant, fmt.Sprintf(`{"n":%d}`, i))
	}
	rows[bad] = row(tenant, `{"bad":"\u0000"}`)
	res := w.StoreBatch(ctx, rows)
	for i, r := range res {
		if i == bad {
			require.ErrorIs(t, r.Err, ErrInvalidRow)
			continue
		}
		require.Equal(t, Result{Inserted: true}, r, "row %d", i)
	}
	var stored int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&stored))
	require.Equal(t, n-1, stored)
	// The whole batch, then two halves per level down to the bad row.
	require.LessOrEqual(t, w.inserts.Load(), int64(1+2*10))
	t.Logf("%d round trips to isolate one bad row in %d", w.inserts.Load(), n)
}
