package messages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multitenant/mtm/projections/cursor"
)

// Querier is what reads need: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Message is one stored message as readers see it.
type Message struct {
	ID        uuid.UUID       `json:"id"`
	TenantID  uuid.UUID       `json:"tenant_id"`
	Payload   json.RawMessage `json:"payload"`
	CreatedAt time.Time       `json:"created_at"`
}

// Position is the keyset position just after m.
func (m Message) Position() cursor.Position {
	return cursor.Position{CreatedAt: m.CreatedAt, ID: m.ID}
}

// Page queries, oldest first, on the tenant's own partition (%s: PartitionIdent).
// (created_at, id) is unique and totally ordered, so a walk resumed strictly after the
// last row seen returns every row that existed when the walk began exactly once,
// however many rows share a timestamp. The row comparison is an index range condition
// on (tenant_id, created_at, id): a page reads limit+1 index entries at any depth, and
// no OFFSET or sort is involved. Naming the partition instead of the parent keeps
// planning independent of the tenant count: a query on the parent needs its partition
// descriptor, which every partition attach invalidates and every backend then rebuilds
// for all partitions (tens of milliseconds at thousands of tenants).
const (
	FirstPageSQL = `SELECT id, tenant_id, payload, created_at FROM %s
WHERE tenant_id = $1
ORDER BY created_at, id
LIMIT $2`
	NextPageSQL = `SELECT id, tenant_id, payload, created_at FROM %s
WHERE tenant_id = $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id
LIMIT $4`
)

// DefaultPageBytes caps the payload bytes of one page: a reader gets fewer rows rather
// than an answer of unbounded size (100 rows of large bodies).
const DefaultPageBytes = 4 << 20

// Page returns up to limit messages of tenantID after position after (nil: from the
// first), oldest first, and whether more follow. One extra row is read to answer the
// latter, so the last page is known without another query. With maxBytes > 0 the page
// also ends before the row that would take its payloads past maxBytes (a page always
// has at least one row, so a walk always advances).
func Page(ctx context.Context, q Querier, tenantID uuid.UUID, after *cursor.Position, limit, maxBytes int) ([]Message, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("page limit must be positive, got %d", limit)
	}
	var (
		rows pgx.Rows
		err  error
	)
	partition := PartitionIdent(tenantID.String())
	if after == nil {
		rows, err = q.Query(ctx, fmt.Sprintf(FirstPageSQL, partition), tenantID, limit+1)
	} else {
		rows, err = q.Query(ctx, fmt.Sprintf(NextPageSQL, partition), tenantID, after.CreatedAt, after.ID, limit+1)
	}
	if isUndefinedTable(err) {
		// No partition yet (the consumer has not set a new tenant up) or any more (it
		// is being removed): the tenant has no messages.
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("query messages of %s: %w", tenantID, err)
	}
	defer rows.Close()
	out := make([]Message, 0, limit+1)
	size := 0
	for rows.Next() {
		var m Message
		if err := rows.Scan(&m.ID, &m.TenantID, &m.Payload, &m.CreatedAt); err != nil {
			return nil, false, fmt.Errorf("scan message of %s: %w", tenantID, err)
		}
		size += len(m.Payload)
		if maxBytes > 0 && size > maxBytes && len(out) > 0 {
			// Close reads past the rest of the result without keeping it.
			return out, true, nil
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		if isUndefinedTable(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read messages of %s: %w", tenantID, err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// isUndefinedTable: SQLSTATE 42P01, the partition does not exist.
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
