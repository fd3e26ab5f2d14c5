package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/projections/tenants"
)

// ReplayResult says what a replay rebuilt.
type ReplayResult struct {
	Events int
	// Skipped counts events that can never be applied (the live projection skips them too).
	Skipped  int
	Position int64
}

// Replay discards the query-side read models (tenants and its checkpoint) and rebuilds
// them from the event store, in batches, in ONE transaction: readers see the old state
// until the commit and the new one after it, never a half-built table. tenant_workers
// (the consumer's live report) and messages are not query-side projections of events
// and are left alone. A projector running meanwhile waits on the table lock and then
// re-applies what it had in flight, which is idempotent.
func Replay(ctx context.Context, pool *pgxpool.Pool, store *eventstore.Store, batch int) (ReplayResult, error) {
	if batch < 1 {
		return ReplayResult{}, fmt.Errorf("replay batch must be positive, got %d", batch)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("begin replay: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if err := tenants.Reset(ctx, tx); err != nil {
		return ReplayResult{}, err
	}
	var res ReplayResult
	for {
		evs, err := store.ReadAll(ctx, res.Position, batch)
		if err != nil {
			return ReplayResult{}, fmt.Errorf("replay after position %d: %w", res.Position, err)
		}
		for _, ev := range evs {
			_, err := tenants.Apply(ctx, tx, ev.Position, ev.Recorded)
			if errors.Is(err, tenants.ErrInvalidEvent) {
				// Same outcome as the live projection, so the states stay equal.
				res.Skipped++
				if err := tenants.SaveCheckpoint(ctx, tx, ev.Position); err != nil {
					return ReplayResult{}, err
				}
			} else if err != nil {
				return ReplayResult{}, fmt.Errorf("replay: %w", err)
			}
			res.Position = ev.Position
			res.Events++
		}
		if len(evs) < batch {
			break
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return ReplayResult{}, fmt.Errorf("commit replay: %w", err)
	}
	return res, nil
}
