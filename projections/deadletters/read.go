package deadletters

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/multitenant/mtm/projections/cursor"
)

// DeadLetter is one archived dead letter as readers see it.
type DeadLetter struct {
	TenantID  uuid.UUID
	ID        uuid.UUID
	MessageID string
	// Reason is a code (invalid_json, too_large, delivery_limit, expired, ...);
	// ReasonDetail the rest of what the dead-lettering said.
	Reason       string
	ReasonDetail string
	Status       string
	Deaths       int
	// Headers are the AMQP headers as archived (a JSON object).
	Headers json.RawMessage
	// Body is the message body exactly as it was published: any bytes.
	Body                []byte
	Size                int
	FirstDeadLetteredAt time.Time
	LastDeadLetteredAt  time.Time
}

// Position is the keyset position just after d.
func (d DeadLetter) Position() cursor.Position {
	return cursor.Position{CreatedAt: d.FirstDeadLetteredAt, ID: d.ID}
}

// Filter narrows a page; zero fields do not filter.
type Filter struct {
	// Reason is a reason code, matched exactly.
	Reason string
	// Status is one of the statuses (ValidStatus).
	Status string
}

const selectDeadLetters = `SELECT tenant_id, id, message_id, reason, reason_detail, status, deaths, headers, body, body_size,
	first_dead_lettered_at, last_dead_lettered_at
FROM dead_letters`

// PageSQL builds a page query. (first_dead_lettered_at, id) is unique per tenant and
// totally ordered, so a walk resumed strictly after the last row seen returns every row
// that existed when it began exactly once. The keyset bound is a range condition on
// dead_letters_page (tenant_id, first_dead_lettered_at, id), or with a status on
// dead_letters_status_page (tenant_id, status, first_dead_lettered_at, id): no OFFSET and
// no sort. A reason is a filter over that range (reasons are few and not indexed).
func PageSQL(f Filter, after bool) string {
	sql := selectDeadLetters + ` WHERE tenant_id = $1`
	n := 1
	if f.Status != "" {
		n++
		sql += fmt.Sprintf(` AND status = $%d`, n)
	}
	if f.Reason != "" {
		n++
		sql += fmt.Sprintf(` AND reason = $%d`, n)
	}
	if after {
		sql += fmt.Sprintf(` AND (first_dead_lettered_at, id) > ($%d, $%d)`, n+1, n+2)
		n += 2
	}
	sql += fmt.Sprintf(` ORDER BY first_dead_lettered_at, id LIMIT $%d`, n+1)
	return sql
}

// Page returns up to limit dead letters of tenantID matching f after position after
// (nil: from the first), oldest first by (first_dead_lettered_at, id), and whether more
// follow. One extra row is read to answer the latter. With maxBytes > 0 the page also
// ends before the row that would take its bodies and headers past maxBytes (a page
// always has at least one row, so a walk always advances). An invalid status in f is an
// error: callers check ValidStatus first.
func Page(ctx context.Context, q Querier, tenantID uuid.UUID, f Filter, after *cursor.Position, limit, maxBytes int) ([]DeadLetter, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("page limit must be positive, got %d", limit)
	}
	if f.Status != "" && !ValidStatus(f.Status) {
		return nil, false, fmt.Errorf("dead letter status %q is not one of pending, redriven, purged", f.Status)
	}
	sql := PageSQL(f, after != nil)
	args := []any{tenantID}
	if f.Status != "" {
		args = append(args, f.Status)
	}
	if f.Reason != "" {
		args = append(args, f.Reason)
	}
	if after != nil {
		args = append(args, after.CreatedAt, after.ID)
	}
	args = append(args, limit+1)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("query dead letters of %s: %w", tenantID, err)
	}
	defer rows.Close()
	out := make([]DeadLetter, 0, limit+1)
	size := 0
	for rows.Next() {
		var d DeadLetter
		if err := rows.Scan(&d.TenantID, &d.ID, &d.MessageID, &d.Reason, &d.ReasonDetail, &d.Status, &d.Deaths,
			&d.Headers, &d.Body, &d.Size, &d.FirstDeadLetteredAt, &d.LastDeadLetteredAt); err != nil {
			return nil, false, fmt.Errorf("scan dead letter of %s: %w", tenantID, err)
		}
		d.FirstDeadLetteredAt, d.LastDeadLetteredAt = d.FirstDeadLetteredAt.UTC(), d.LastDeadLetteredAt.UTC()
		size += len(d.Body) + len(d.Headers)
		if maxBytes > 0 && size > maxBytes && len(out) > 0 {
			// Close reads past the rest of the result without keeping it.
			return out, true, nil
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read dead letters of %s: %w", tenantID, err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// PendingCounts returns the number of pending dead letters of each tenant in ids, in one
// query (an index-only count on dead_letters_status_page). Tenants without any are
// absent from the map (a zero count).
func PendingCounts(ctx context.Context, q Querier, ids []uuid.UUID) (map[uuid.UUID]int, error) {
	out := make(map[uuid.UUID]int, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT tenant_id, count(*) FROM dead_letters
		WHERE tenant_id = ANY($1) AND status = $2 GROUP BY tenant_id`, ids, StatusPending)
	if err != nil {
		return nil, fmt.Errorf("count pending dead letters: %w", err)
	}
	return scanCounts(rows, out)
}
