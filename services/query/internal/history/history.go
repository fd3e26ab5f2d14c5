// Package history reads a tenant's event history straight from the event store: its
// stream, oldest first by version, in keyset pages on the (stream_id, version) key.
package history

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/multitenant/mtm/projections/cursor"
)

// Querier is what reads need: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Event is one stored event of a tenant's stream.
type Event struct {
	Type          string
	Version       int
	OccurredAt    time.Time
	CorrelationID string // empty when the command carried none
	// Data is the event's payload as stored (JSON).
	Data json.RawMessage
}

// Position is the keyset position just after e: cursor.KindEvents keeps the stream
// version in the position's time (as nanoseconds since the epoch) and no id.
func (e Event) Position() cursor.Position {
	return cursor.Position{CreatedAt: time.Unix(0, int64(e.Version)).UTC(), ID: uuid.Nil}
}

// AfterVersion is the stream version a cursor.KindEvents position resumes after.
func AfterVersion(p cursor.Position) int {
	return int(p.CreatedAt.UnixNano())
}

// PageSQL reads one page: a range scan of the (stream_id, version) unique index that
// stops after $3 entries, at any depth.
const PageSQL = `SELECT event_type, version, occurred_at,
	COALESCE(payload->'metadata'->>'correlation_id', ''), COALESCE(payload->'data', 'null'::jsonb)
FROM event_store
WHERE stream_id = $1 AND version > $2
ORDER BY version
LIMIT $3`

// Page returns up to limit events of tenantID's stream after version afterVersion (0:
// from the first), oldest first, and whether more follow. One extra row is read to answer
// the latter. With maxBytes > 0 the page also ends before the event that would take its
// data past maxBytes (a page always has at least one event, so a walk always advances).
// Events of types this build does not know are listed as stored.
func Page(ctx context.Context, q Querier, tenantID uuid.UUID, afterVersion, limit, maxBytes int) ([]Event, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("page limit must be positive, got %d", limit)
	}
	rows, err := q.Query(ctx, PageSQL, tenantID, afterVersion, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("query events of %s: %w", tenantID, err)
	}
	defer rows.Close()
	out := make([]Event, 0, limit+1)
	size := 0
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.Type, &e.Version, &e.OccurredAt, &e.CorrelationID, &e.Data); err != nil {
			return nil, false, fmt.Errorf("scan event of %s: %w", tenantID, err)
		}
		e.OccurredAt = e.OccurredAt.UTC()
		size += len(e.Data)
		if maxBytes > 0 && size > maxBytes && len(out) > 0 {
			return out, true, nil
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read events of %s: %w", tenantID, err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}
