package messages

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Row is one message to store. Payload is valid JSON.
type Row struct {
	TenantID  uuid.UUID
	ID        uuid.UUID
	Payload   []byte
	CreatedAt time.Time
}

// Inserter is a pool, connection or transaction.
type Inserter interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// insertSQL stores a batch with one statement: arrays go over in binary (uuids as 16
// bytes, payloads as text cast to jsonb by the server), and only the keys of the rows
// actually inserted come back, also in binary.
const insertSQL = `
	INSERT INTO messages (tenant_id, id, payload, created_at)
	SELECT t, i, p::jsonb, c
	FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) AS u(t, i, p, c)
	ON CONFLICT (tenant_id, id) DO NOTHING
	RETURNING tenant_id, id`

// Insert stores rows with one multi-row statement (group commit: many deliveries, one
// round trip) and reports for each row whether it was new. A row whose (tenant_id, id)
// already exists, or repeats an earlier row of the same call, is reported false:
// redelivered messages are stored once.
func Insert(ctx context.Context, q Inserter, rows []Row) ([]bool, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	tenants := make([][16]byte, len(rows))
	ids := make([][16]byte, len(rows))
	payloads := make([][]byte, len(rows))
	created := make([]time.Time, len(rows))
	for i, r := range rows {
		tenants[i], ids[i], payloads[i], created[i] = r.TenantID, r.ID, r.Payload, r.CreatedAt
	}
	res, err := q.Query(ctx, insertSQL, tenants, ids, payloads, created)
	if err != nil {
		return nil, fmt.Errorf("insert %d messages: %w", len(rows), err)
	}
	defer res.Close()
	keys := make([][32]byte, 0, len(rows))
	for res.Next() {
		var k [32]byte
		if err := res.Scan((*[16]byte)(k[:16]), (*[16]byte)(k[16:])); err != nil {
			return nil, fmt.Errorf("scan inserted message: %w", err)
		}
		keys = append(keys, k)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("insert %d messages: %w", len(rows), err)
	}
	out := make([]bool, len(rows))
	if len(keys) == len(rows) {
		// Every row was new (the common case): no need to match keys.
		for i := range out {
			out[i] = true
		}
		return out, nil
	}
	inserted := make(map[[32]byte]bool, len(keys))
	for _, k := range keys {
		inserted[k] = true
	}
	for i, r := range rows {
		var k [32]byte
		copy(k[:16], r.TenantID[:])
		copy(k[16:], r.ID[:])
		out[i] = inserted[k]
		delete(inserted, k) // a repeat within the same call is a duplicate
	}
	return out, nil
}
