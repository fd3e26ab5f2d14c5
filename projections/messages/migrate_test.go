//go:build integration

package messages_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/migrations"
	"github.com/multitenant/mtm/platform/pgtest"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/projections/messages"
)

// singleLevel is the last migration whose messages has one LIST partition per tenant
// directly under it.
const singleLevel = 8

func gooseProvider(t *testing.T, pool *pgxpool.Pool) *goose.Provider {
	t.Helper()
	db := postgres.OpenDB(pool)
	t.Cleanup(func() { _ = db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	require.NoError(t, err)
	return p
}

// partitionStrategy is messages' partitioning: "l" (list, one level) or "h" (hash, two levels).
func partitionStrategy(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass`).Scan(&s))
	return s
}

// requireRows checks that each tenant's rows are readable through messages and through
// the tenant's own partition.
func requireRows(t *testing.T, pool *pgxpool.Pool, want map[uuid.UUID]int) {
	t.Helper()
	ctx := context.Background()
	for tenant, n := range want {
		var viaParent, viaLeaf int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1`, tenant).Scan(&viaParent))
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+messages.PartitionIdent(tenant.String())).Scan(&viaLeaf))
		require.Equal(t, n, viaParent, tenant)
		require.Equal(t, n, viaLeaf, tenant)
	}
}

// The two-level migration converts a database of the single-level layout: every leaf
// (more than one batch of them) with its rows moves under its hash sub-parent, with its
// indexes adopted by the sub-parent's; an interrupted run leaves a consistent state and
// the next run finishes it; a partition whose concurrent detach was interrupted (a
// deletion in progress) ends detached, so the deletion's retry can drop it; new tenants
// attach afterwards. Down restores the single-level layout with every row.
func TestMigrationToTwoLevels(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmpty(t)
	ctx := context.Background()
	provider := gooseProvider(t, db.Pool)
	_, err := provider.UpTo(ctx, singleLevel)
	require.NoError(t, err)
	require.Equal(t, "l", partitionStrategy(t, db.Pool))

	// The old layout: each partition attached directly to messages, as before.
	rows := map[uuid.UUID]int{}
	tenants := make([]uuid.UUID, 150)
	for i := range tenants {
		tenants[i] = uuid.New()
		ident := messages.PartitionIdent(tenants[i].String())
		_, err := db.Pool.Exec(ctx, "CREATE TABLE "+ident+" (LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, "ALTER TABLE messages ATTACH PARTITION "+ident+" FOR VALUES IN ('"+tenants[i].String()+"')")
		require.NoError(t, err)
		rows[tenants[i]] = i % 4 // some tenants have no rows
		if rows[tenants[i]] > 0 {
			_, err = db.Pool.Exec(ctx, `INSERT INTO messages (tenant_id, id, payload)
				SELECT $1, gen_random_uuid(), jsonb_build_object('n', g) FROM generate_series(1, $2) g`, tenants[i], rows[tenants[i]])
			require.NoError(t, err)
		}
	}

	// A deletion whose DETACH ... CONCURRENTLY timed out: the partition stays pending detach.
	deleting := tenants[len(tenants)-1]
	delete(rows, deleting)
	reader, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	var n int
	require.NoError(t, reader.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1`, deleting).Scan(&n))
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SET lock_timeout = 100`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "ALTER TABLE messages DETACH PARTITION "+messages.PartitionIdent(deleting.String())+" CONCURRENTLY")
	require.ErrorContains(t, err, "lock timeout")
	conn.Hijack().Close(ctx) //nolint:errcheck // the session's lock_timeout must not reach the pool
	require.NoError(t, reader.Rollback(ctx))
	var pending bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = $1::regclass`,
		messages.PartitionName(deleting.String())).Scan(&pending))
	require.True(t, pending)

	// Interrupt the migration in its second batch: a transaction holds a lock on a
	// partition the second batch moves, and the migration's lock wait is bounded.
	var blocked string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT i.inhrelid::regclass::text FROM pg_inherits i
		WHERE i.inhparent = 'messages'::regclass ORDER BY i.inhrelid OFFSET 120 LIMIT 1`).Scan(&blocked))
	blocker, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(ctx, "LOCK TABLE "+blocked+" IN ACCESS SHARE MODE")
	require.NoError(t, err)
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("lock_timeout", "500")
	u.RawQuery = q.Encode()
	impatient, err := postgres.NewPool(ctx, u.String(), 2)
	require.NoError(t, err)
	defer impatient.Close()
	_, err = gooseProvider(t, impatient).Up(ctx)
	require.ErrorContains(t, err, "lock timeout")
	require.NoError(t, blocker.Rollback(ctx))
	require.Equal(t, "l", partitionStrategy(t, db.Pool), "messages is only swapped once every partition moved")
	var moved int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits l JOIN pg_inherits s ON s.inhrelid = l.inhparent
		WHERE s.inhparent = 'messages_two_level'::regclass`).Scan(&moved))
	require.Equal(t, 100, moved, "the first batch committed")

	_, err = provider.Up(ctx)
	require.NoError(t, err, "a second run finishes the migration")
	require.Equal(t, "h", partitionStrategy(t, db.Pool))
	requireRows(t, db.Pool, rows)
	for tenant := range rows {
		parent, grandparent := subParentOf(t, db.Pool, tenant.String())
		require.Regexp(t, `^messages_h\d\d$`, parent)
		require.Equal(t, "messages", grandparent)
		// Both of the partition's indexes are attached to the sub-parent's: adopted,
		// not duplicated.
		var indexes, attached int
		require.NoError(t, db.Pool.QueryRow(ctx, `
			SELECT count(*), count(i.inhparent) FROM pg_index x
			LEFT JOIN pg_inherits i ON i.inhrelid = x.indexrelid
			WHERE x.indrelid = $1::regclass`, messages.PartitionName(tenant.String())).Scan(&indexes, &attached))
		require.Equal(t, 2, indexes)
		require.Equal(t, 2, attached)
	}
	ok, err := messages.PartitionExists(ctx, db.Pool, deleting.String())
	require.NoError(t, err)
	require.False(t, ok, "the pending detach was finished")
	require.NoError(t, messages.DropPartition(ctx, db.Pool, deleting.String()))
	var leftovers int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_class
		WHERE relname IN ('messages_two_level', 'messages_one_level') OR relname = $1`,
		messages.PartitionName(deleting.String())).Scan(&leftovers))
	require.Zero(t, leftovers)
	var procs int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE proname LIKE 'messages_two_level%'`).Scan(&procs))
	require.Zero(t, procs)

	// Writes route through both levels, for moved tenants and new ones.
	fresh := uuid.New()
	require.NoError(t, messages.EnsurePartition(ctx, db.Pool, fresh.String()))
	batch := []messages.Row{{TenantID: fresh, ID: uuid.New(), Payload: []byte(`{}`), CreatedAt: time.Now()}}
	for tenant := range rows {
		batch = append(batch, messages.Row{TenantID: tenant, ID: uuid.New(), Payload: []byte(`{}`), CreatedAt: time.Now()})
		rows[tenant]++
	}
	rows[fresh] = 1
	_, err = messages.Insert(ctx, db.Pool, batch)
	require.NoError(t, err)
	requireRows(t, db.Pool, rows)

	_, err = provider.DownTo(ctx, singleLevel)
	require.NoError(t, err)
	require.Equal(t, "l", partitionStrategy(t, db.Pool))
	requireRows(t, db.Pool, rows)
	var direct int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'messages'::regclass`).Scan(&direct))
	require.Equal(t, len(rows), direct, "every partition is back directly under messages")

	_, err = provider.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, "h", partitionStrategy(t, db.Pool))
	requireRows(t, db.Pool, rows)
	require.NoError(t, messages.DropPartition(ctx, db.Pool, fresh.String()))
	delete(rows, fresh)
	requireRows(t, db.Pool, rows)
}
