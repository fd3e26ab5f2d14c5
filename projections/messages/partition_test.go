//go:build integration

package messages_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

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

// subParentOf returns the parent of the tenant's partition and that parent's parent.
func subParentOf(t *testing.T, pool *pgxpool.Pool, tenantID string) (parent, grandparent string) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT l.inhparent::regclass::text, s.inhparent::regclass::text
		FROM pg_inherits l JOIN pg_inherits s ON s.inhrelid = l.inhparent
		WHERE l.inhrelid = $1::regclass`, messages.PartitionName(tenantID)).Scan(&parent, &grandparent))
	return parent, grandparent
}

// A tenant's partition hangs under one of the hash sub-parents of messages, the one
// Postgres routes the tenant's rows to: an empty table attaches to any sub-parent, so
// only inserting through messages shows it is the right one. Dropping detaches it from
// that sub-parent, and the tenant can be set up again.
func TestPartitionLivesUnderItsHashSubParent(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var subs int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'messages'::regclass`).Scan(&subs))
	require.Equal(t, 64, subs)

	tenants := make([]uuid.UUID, 40)
	rows := make([]messages.Row, len(tenants))
	for i := range tenants {
		tenants[i] = uuid.New()
		require.NoError(t, messages.EnsurePartition(ctx, db.Pool, tenants[i].String()))
		rows[i] = messages.Row{TenantID: tenants[i], ID: uuid.New(), Payload: []byte(`{}`), CreatedAt: time.Now()}
	}
	_, err := messages.Insert(ctx, db.Pool, rows)
	require.NoError(t, err, "every row finds its tenant's partition through both levels")
	for _, tenant := range tenants {
		id := tenant.String()
		parent, grandparent := subParentOf(t, db.Pool, id)
		require.Regexp(t, `^messages_h\d\d$`, parent)
		require.Equal(t, "messages", grandparent)
		var stored string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM messages WHERE tenant_id = $1`, tenant).Scan(&stored))
		require.Equal(t, messages.PartitionName(id), stored)
		ok, err := messages.PartitionExists(ctx, db.Pool, id)
		require.NoError(t, err)
		require.True(t, ok)
	}

	gone := tenants[0].String()
	require.NoError(t, messages.DropPartition(ctx, db.Pool, gone))
	ok, err := messages.PartitionExists(ctx, db.Pool, gone)
	require.NoError(t, err)
	require.False(t, ok)
	var table bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, messages.PartitionName(gone)).Scan(&table))
	require.False(t, table)
	require.NoError(t, messages.DropPartition(ctx, db.Pool, gone), "dropping a missing partition is fine")
	require.NoError(t, messages.EnsurePartition(ctx, db.Pool, gone))
	ok, err = messages.PartitionExists(ctx, db.Pool, gone)
	require.NoError(t, err)
	require.True(t, ok)
}

// Many tenants set up at once, each by two callers at the same time (two consumers
// following the same event): every call succeeds and every tenant ends up with one
// attached partition.
func TestEnsurePartitionConcurrently(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	tenants := make([]string, 30)
	for i := range tenants {
		tenants[i] = uuid.NewString()
	}
	var g errgroup.Group
	g.SetLimit(16)
	for _, id := range append(slices.Clone(tenants), tenants...) {
		g.Go(func() error { return messages.EnsurePartition(ctx, db.Pool, id) })
	}
	require.NoError(t, g.Wait())
	for _, id := range tenants {
		ok, err := messages.PartitionExists(ctx, db.Pool, id)
		require.NoError(t, err)
		require.True(t, ok, id)
		_, err = messages.Insert(ctx, db.Pool, []messages.Row{{TenantID: uuid.MustParse(id), ID: uuid.New(), Payload: []byte(`{}`), CreatedAt: time.Now()}})
		require.NoError(t, err, id)
	}
	var leaves int
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT count(*) FROM pg_inherits l JOIN pg_inherits s ON s.inhrelid = l.inhparent
		WHERE s.inhparent = 'messages'::regclass`).Scan(&leaves))
	require.Equal(t, len(tenants), leaves)
}
