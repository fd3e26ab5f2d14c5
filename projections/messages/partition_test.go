//go:build integration

package messages_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/projections/messages"
)

// A transaction that read messages keeps DETACH ... CONCURRENTLY waiting: the bounded
// drop gives up instead of waiting for it (leaving the partition pending detach, while
// other tenants can still be attached), and a later call finishes the detach.
func TestDropPartitionWithinIsBounded(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	gone, other := uuid.NewString(), uuid.NewString()
	require.NoError(t, messages.EnsurePartition(ctx, db.Pool, gone))

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var n int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n))

	start := time.Now()
	err = messages.DropPartitionWithin(ctx, db.Pool, gone, 200*time.Millisecond)
	require.Error(t, err, "the detach cannot finish while the transaction runs")
	require.Less(t, time.Since(start), 5*time.Second)
	require.NoError(t, messages.EnsurePartition(ctx, db.Pool, other), "new tenants are not blocked")
	// The timeouts were only the drop connection's: the pool's other sessions keep the defaults.
	var lt string
	require.NoError(t, db.Pool.QueryRow(ctx, `SHOW lock_timeout`).Scan(&lt))
	require.Equal(t, "0", lt)

	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, messages.DropPartitionWithin(ctx, db.Pool, gone, 200*time.Millisecond), "the pending detach is finished")
	ok, err := messages.PartitionExists(ctx, db.Pool, gone)
	require.NoError(t, err)
	require.False(t, ok)
	var table bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, messages.PartitionName(gone)).Scan(&table))
	require.False(t, table)
	ok, err = messages.PartitionExists(ctx, db.Pool, other)
	require.NoError(t, err)
	require.True(t, ok)
}
