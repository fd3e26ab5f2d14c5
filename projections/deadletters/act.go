package deadletters

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"
)

// DB is what the acting functions run on: the command service's *sql.DB, or the
// *sql.Tx of an event append, so a purge commits together with its event.
type DB interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Selector picks a tenant's pending dead letters: by IDs, or else up to Max of them
// (oldest first by first_dead_lettered_at, then id) whose reason is Reason (empty: any
// reason). The command side validates it before it gets here; Max must be positive
// when IDs is empty.
type Selector struct {
	IDs    []uuid.UUID
	Reason string
	Max    int
}

// Pending is a selected dead letter as needed to redrive it: the raw body goes back
// with its original message id, and DeathKey is what MarkRedriven compares so that a
// death in between is not overwritten.
type Pending struct {
	ID        uuid.UUID
	MessageID string
	Body      []byte
	DeathKey  string
}

// selection is the WHERE/ORDER/LIMIT of a selector over the pending rows of $1: the
// ids in $2, or the reason in $2 (” any) up to $3 rows, oldest first.
func (s Selector) selection(tenantID uuid.UUID) (string, []any) {
	if len(s.IDs) > 0 {
		ids := make([]string, len(s.IDs))
		for i, id := range s.IDs {
			ids[i] = id.String()
		}
		return `tenant_id = $1 AND status = 'pending' AND id = ANY($2::uuid[])
			ORDER BY first_dead_lettered_at, id`, []any{tenantID, ids}
	}
	return `tenant_id = $1 AND status = 'pending' AND ($2 = '' OR reason = $2)
		ORDER BY first_dead_lettered_at, id LIMIT $3`, []any{tenantID, s.Reason, s.Max}
}

// Count is how many dead letters sel picks now (a dry run).
func Count(ctx context.Context, db DB, tenantID uuid.UUID, sel Selector) (int, error) {
	where, args := sel.selection(tenantID)
	rows, err := db.QueryContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM dead_letters WHERE `+where+`) AS picked`, args...)
	if err != nil {
		return 0, fmt.Errorf("count dead letters of %s: %w", tenantID, err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, fmt.Errorf("count dead letters of %s: %w", tenantID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("count dead letters of %s: %w", tenantID, err)
	}
	return n, nil
}

// Select reads the dead letters sel picks, oldest first, with their bodies.
func Select(ctx context.Context, db DB, tenantID uuid.UUID, sel Selector) ([]Pending, error) {
	where, args := sel.selection(tenantID)
	rows, err := db.QueryContext(ctx, `SELECT id, message_id, body, death_key FROM dead_letters WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("select dead letters of %s: %w", tenantID, err)
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		var p Pending
		if err := rows.Scan(&p.ID, &p.MessageID, &p.Body, &p.DeathKey); err != nil {
			return nil, fmt.Errorf("select dead letters of %s: %w", tenantID, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select dead letters of %s: %w", tenantID, err)
	}
	return out, nil
}

// MarkRedriven marks the given dead letters redriven, each only if it is still pending
// with the death key it was read with: one that died again meanwhile (a new death key)
// stays pending, as does one purged meanwhile. It returns how many rows it marked.
func MarkRedriven(ctx context.Context, db DB, tenantID uuid.UUID, done []Pending) (int, error) {
	if len(done) == 0 {
		return 0, nil
	}
	ids := make([]string, len(done))
	keys := make([]string, len(done))
	for i, p := range done {
		ids[i], keys[i] = p.ID.String(), p.DeathKey
	}
	res, err := db.ExecContext(ctx, `
		UPDATE dead_letters d SET status = 'redriven', updated_at = now()
		FROM unnest($2::uuid[], $3::text[]) AS m(id, death_key)
		WHERE d.tenant_id = $1 AND d.id = m.id AND d.death_key = m.death_key AND d.status = 'pending'`,
		tenantID, ids, keys)
	if err != nil {
		return 0, fmt.Errorf("mark %d dead letters of %s redriven: %w", len(done), tenantID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mark dead letters of %s redriven: %w", tenantID, err)
	}
	return int(n), nil
}

// Purge marks the dead letters sel picks purged and returns how many. Run it in the
// transaction that records the purge.
func Purge(ctx context.Context, db DB, tenantID uuid.UUID, sel Selector) (int, error) {
	where, args := sel.selection(tenantID)
	// FOR UPDATE: a concurrent purge or archive of the same rows waits, so the count
	// is exactly the rows this statement moved. MATERIALIZED: the pick runs once; as a
	// join's inner side it could be rescanned, skip the rows this statement already
	// updated and let LIMIT reach past max.
	res, err := db.ExecContext(ctx, `
		WITH picked AS MATERIALIZED (SELECT tenant_id, id FROM dead_letters WHERE `+where+` FOR UPDATE)
		UPDATE dead_letters d SET status = 'purged', updated_at = now()
		FROM picked
		WHERE d.tenant_id = picked.tenant_id AND d.id = picked.id AND d.status = 'pending'`, args...)
	if err != nil {
		return 0, fmt.Errorf("purge dead letters of %s: %w", tenantID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge dead letters of %s: %w", tenantID, err)
	}
	return int(n), nil
}
