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

// CreatePartition creates the tenant's partition the way production does: a plain
// table LIKE messages, attached to its hash sub-parent, which also builds the
// partition's copy of the (tenant_id, created_at, id) index.
func CreatePartition(t testing.TB, pool *pgxpool.Pool, tenantID uuid.UUID) {
	t.Helper()
	if err := messages.EnsurePartition(context.Background(), pool, tenantID.String()); err != nil {
		t.Fatalf("messagestest: create partition: %v", err)
	}
}

// chunk bounds the rows one statement inserts. Each statement is a transaction, and an
// open transaction anywhere in the cluster holds back every watermill-sql subscription
// (they read below the oldest running xid), so big fills must not stall parallel tests.
const chunk = 5000

// InsertSameTime inserts n rows of tenantID, all with created_at = at, with random ids,
// in statements of at most chunk rows, and returns their ids.
func InsertSameTime(t testing.TB, pool *pgxpool.Pool, tenantID uuid.UUID, at time.Time, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, 0, n)
	for done := 0; done < n; done += chunk {
		rows, err := pool.Query(context.Background(), `
			INSERT INTO messages (tenant_id, id, payload, created_at)
			SELECT $1, gen_random_uuid(), jsonb_build_object('n', g), $2
			FROM generate_series($3::int + 1, $3::int + $4::int) AS g
			RETURNING id`, tenantID, at, done, min(chunk, n-done))
		if err != nil {
			t.Fatalf("messagestest: insert rows: %v", err)
		}
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				t.Fatalf("messagestest: scan id: %v", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("messagestest: insert rows: %v", err)
		}
	}
	return ids
}

// InsertSeries inserts n rows of tenantID whose created_at grows by step from start
// (row g at start + (g-1)*step), with random ids, in statements of at most chunk rows.
func InsertSeries(t testing.TB, pool *pgxpool.Pool, tenantID uuid.UUID, start time.Time, step time.Duration, n int) {
	t.Helper()
	for done := 0; done < n; done += chunk {
		_, err := pool.Exec(context.Background(), `
			INSERT INTO messages (tenant_id, id, payload, created_at)
			SELECT $1, gen_random_uuid(), jsonb_build_object('n', g), $2::timestamptz + (g - 1) * make_interval(secs => $3::float8)
			FROM generate_series($4::int + 1, $4::int + $5::int) AS g`, tenantID, start, step.Seconds(), done, min(chunk, n-done))
		if err != nil {
			t.Fatalf("messagestest: insert series: %v", err)
		}
	}
}
