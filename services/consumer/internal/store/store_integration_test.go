//go:build integration

package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
				return errors.New("tenant is deleted")
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
