package messages

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Row is one message to store. TenantID and ID are canonical UUID strings; Payload is
// valid JSON.
type Row struct {
	TenantID  string
	ID        string
	Payload   []byte
	CreatedAt time.Time
}

// Inserter is a pool, connection or transaction.
type Inserter interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Insert stores rows with one multi-row statement (group commit: many deliveries, one
// round trip) and reports for each row whether it was new. A row whose (tenant_id, id)
// already exists, or repeats an earlier row of the same call, is reported false:
// redelivered messages are stored once.
func Insert(ctx context.Context, q Inserter, rows []Row) ([]bool, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	tenants := make([]string, len(rows))
	ids := make([]string, len(rows))
	payloads := make([]string, len(rows))
	created := make([]time.Time, len(rows))
	for i, r := range rows {
		tenants[i], ids[i], payloads[i], created[i] = r.TenantID, r.ID, string(r.Payload), r.CreatedAt
	}
	res, err := q.Query(ctx, `
		INSERT INTO messages (tenant_id, id, payload, created_at)
		SELECT t, i, p::jsonb, c
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) AS u(t, i, p, c)
		ON CONFLICT (tenant_id, id) DO NOTHING
		RETURNING tenant_id::text, id::text`, tenants, ids, payloads, created)
	if err != nil {
		return nil, fmt.Errorf("insert %d messages: %w", len(rows), err)
	}
	defer res.Close()
	inserted := make(map[[2]string]bool, len(rows))
	for res.Next() {
		var t, i string
		if err := res.Scan(&t, &i); err != nil {
			return nil, fmt.Errorf("scan inserted message: %w", err)
		}
		inserted[[2]string{t, i}] = true
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("insert %d messages: %w", len(rows), err)
	}
	out := make([]bool, len(rows))
	for i, r := range rows {
		k := [2]string{r.TenantID, r.ID}
		out[i] = inserted[k]
		delete(inserted, k) // a repeat within the same call is a duplicate
	}
	return out, nil
}
