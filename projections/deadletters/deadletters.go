// Package deadletters is the dead-letter archive: the `dead_letters` table, written by
// the consumer (archive.go: every message of a tenant's DLQ, acked off the DLQ only
// after its row commits), browsed by the query service (read.go) and acted on by the
// command service (act.go: redrive and purge, recorded as tenant events).
package deadletters

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Querier runs a query: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Table is the archive table.
const Table = "dead_letters"

// Statuses of an archived dead letter.
const (
	// StatusPending: archived and not acted on; the only status redrive and purge pick.
	StatusPending = "pending"
	// StatusRedriven: published into the tenant's queue again. A redriven message that
	// dies again comes back as pending with its death count raised.
	StatusRedriven = "redriven"
	// StatusPurged: given up on by an operator; never redriven.
	StatusPurged = "purged"
)

// ValidStatus reports whether s is one of the statuses.
func ValidStatus(s string) bool {
	return s == StatusPending || s == StatusRedriven || s == StatusPurged
}

// scanCounts adds (tenant_id, count) rows to out, which it returns.
func scanCounts(rows pgx.Rows, out map[uuid.UUID]int) (map[uuid.UUID]int, error) {
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("scan pending dead letters: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count pending dead letters: %w", err)
	}
	return out, nil
}
