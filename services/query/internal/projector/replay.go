package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/projections/tenants"
)

// DefaultReplayBatch is the events read per query by default: large enough that the
// round trips do not matter, while rows still stream (pgx does not buffer a result).
const DefaultReplayBatch = 10_000

// ReplayResult says what a replay rebuilt.
type ReplayResult struct {
	Events int
	// Skipped counts events that can never be applied (the live projection skips them too).
	Skipped  int
	Position int64
	// Tenants is the number of rows written (deleted tenants included).
	Tenants int
}

// Replay discards the query-side read models (tenants and its checkpoint) and rebuilds
// them from the event store in ONE transaction: readers see the old state until the
// commit and the new one after it, never a half-built table. tenant_workers (the
// consumer's live report) and messages are not query-side projections of events and
// are left alone. A projector running meanwhile waits on the table lock and then
// re-applies what it had in flight, which is idempotent.
//
// The events are read in pages of batch (keyset on position) and folded in memory with
// the live projection's transitions (tenants.Next); the final rows are written with one
// COPY. The transaction stays open only as long as that takes, which matters because
// watermill-sql subscriptions read no further than the oldest open transaction: replay
// time is event-stream stall time. Memory grows with the number of tenants (see
// tenants.Rebuild), not with the number of events.
func Replay(ctx context.Context, pool *pgxpool.Pool, batch int) (ReplayResult, error) {
	if batch < 1 {
		return ReplayResult{}, fmt.Errorf("replay batch must be positive, got %d", batch)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("begin replay: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// Lock and empty the table first: a concurrent live apply then waits for the commit
	// instead of writing rows the COPY would collide with.
	if err := tenants.Reset(ctx, tx); err != nil {
		return ReplayResult{}, err
	}
	rb := tenants.NewRebuild(0)
	for {
		n, err := foldPage(ctx, tx, rb, batch)
		if err != nil {
			return ReplayResult{}, err
		}
		if n < batch {
			break
		}
	}
	if err := rb.Save(ctx, tx); err != nil {
		return ReplayResult{}, fmt.Errorf("replay: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return ReplayResult{}, fmt.Errorf("commit replay: %w", err)
	}
	return ReplayResult{Events: rb.Events, Skipped: rb.Skipped, Position: rb.Position, Tenants: rb.Len()}, nil
}

// foldPage reads up to batch events after rb.Position into rb and returns how many.
func foldPage(ctx context.Context, tx pgx.Tx, rb *tenants.Rebuild, batch int) (int, error) {
	after := rb.Position
	rows, err := tx.Query(ctx,
		`SELECT position, payload FROM event_store WHERE position > $1 ORDER BY position LIMIT $2`, after, batch)
	if err != nil {
		return 0, fmt.Errorf("replay after position %d: %w", after, err)
	}
	defer rows.Close()
	n := 0
	var pos int64
	var raw []byte
	for rows.Next() {
		if err := rows.Scan(&pos, &raw); err != nil {
			return 0, fmt.Errorf("replay: scan event after position %d: %w", after, err)
		}
		// The event store's own rule: an unknown type is kept (it only moves the
		// checkpoint); an undecodable payload stops the replay.
		rec, err := events.Decode(raw)
		if err != nil && !errors.Is(err, events.ErrUnknownType) {
			return 0, fmt.Errorf("replay: event at position %d: %w", pos, err)
		}
		if err := rb.Add(pos, rec); err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("replay after position %d: %w", after, err)
	}
	return n, nil
}
