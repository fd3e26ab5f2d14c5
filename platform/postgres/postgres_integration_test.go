//go:build integration

package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
)

func TestConcurrentMigrateIsSafe(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	ctx := context.Background()

	var g errgroup.Group
	for range 3 {
		g.Go(func() error {
			pool, err := postgres.NewPool(ctx, db.URL, 4)
			if err != nil {
				return err
			}
			defer pool.Close()
			return postgres.Migrate(ctx, pool)
		})
	}
	require.NoError(t, g.Wait())

	for _, table := range []string{"event_store", "messages", "tenants", "tenant_workers", "watermill_tenant_events"} {
		var exists bool
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists))
		require.True(t, exists, table)
	}
	// Applying again is a no-op.
	require.NoError(t, postgres.Migrate(ctx, db.Pool))
}

func TestEventStoreIsAppendOnly(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO event_store (stream_id, version, event_id, event_type, payload, occurred_at)
		VALUES (gen_random_uuid(), 1, gen_random_uuid(), 't', '{}', now())`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE event_store SET event_type = 'x'`)
	require.ErrorContains(t, err, "append-only")
	_, err = db.Pool.Exec(ctx, `DELETE FROM event_store`)
	require.ErrorContains(t, err, "append-only")
}

func TestEnsureDatabaseIsIdempotent(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	require.NoError(t, postgres.EnsureDatabase(context.Background(), db.URL))
}

func TestPingFailsWhenServerUnreachable(t *testing.T) {
	t.Parallel()
	pool, err := postgres.NewPool(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable", 1)
	require.NoError(t, err, "creating a pool must not need the server")
	defer pool.Close()
	require.Error(t, postgres.Ping(pool)(context.Background()))
}
