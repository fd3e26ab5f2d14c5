// Package messagestest creates tenant partitions and rows for tests of readers, without
// depending on the consumer service that writes them in production.
package messagestest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/projections/messages"
)

// CreatePartition creates the tenant's partition the way production does (DESIGN 4.6):
// a plain table LIKE messages, then ATTACHed, which also builds the partition's copy of
// the (tenant_id, created_at, id) index.
func CreatePartition(t testing.TB, pool *pgxpool.Pool, tenantID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	ident := messages.PartitionIdent(tenantID.String())
	// The tenant id is a parsed UUID, so its text form is safe inside the literal.
	stmts := []string{
		"CREATE TABLE " + ident + " (LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
		"ALTER TABLE messages ATTACH PARTITION " + ident + " FOR VALUES IN ('" + tenantID.String() + "')",
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatalf("messagestest: %s: %v", s, err)
		}
	}
}

// InsertSameTime inserts n rows of tenantID, all with created_at = at, with random ids,
// in one statement, and returns their ids.
func InsertSameTime(t testing.TB, pool *pgxpool.Pool, tenantID uuid.UUID, at time.Time, n int) []uuid.UUID {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		INSERT INTO messages (tenant_id, id, payload, created_at)
		SELECT $1, gen_random_uuid(), jsonb_build_object('n', g), $2
		FROM generate_series(1, $3) AS g
		RETURNING id`, tenantID, at, n)
	if err != nil {
		t.Fatalf("messagestest: insert rows: %v", err)
	}
	defer rows.Close()
	ids := make([]uuid.UUID, 0, n)
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatalf("messagestest: scan id: %v", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("messagestest: insert rows: %v", err)
	}
	return ids
}

// InsertSeries inserts n rows of tenantID whose created_at grows by step from start
// (row g at start + (g-1)*step), with random ids, in one statement.
func InsertSeries(t testing.TB, pool *pgxpool.Pool, tenantID uuid.UUID, start time.Time, step time.Duration, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO messages (tenant_id, id, payload, created_at)
		SELECT $1, gen_random_uuid(), jsonb_build_object('n', g), $2::timestamptz + (g - 1) * make_interval(secs => $3::float8)
		FROM generate_series(1, $4) AS g`, tenantID, start, step.Seconds(), n)
	if err != nil {
		t.Fatalf("messagestest: insert series: %v", err)
	}
}
