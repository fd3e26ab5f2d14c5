package projector

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/projections/tenants"
)

// DefaultReplayBatch is the events read per query by default (REPLAY_BATCH in main.go):
// large enough that round trips do not matter, small enough that the two pages in
// flight (one being read, one being folded; ~300 bytes of JSON per event) stay a few MB.
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
	if err := foldAll(ctx, tx, rb, batch); err != nil {
		return ReplayResult{}, err
	}
	if err := rb.Save(ctx, tx); err != nil {
		return ReplayResult{}, fmt.Errorf("replay: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return ReplayResult{}, fmt.Errorf("commit replay: %w", err)
	}
	return ReplayResult{Events: rb.Events, Skipped: rb.Skipped, Position: rb.Position, Tenants: rb.Len()}, nil
}

// page is a run of raw events in position order.
type page struct {
	positions []int64
	payloads  [][]byte
}

// foldAll reads the event store page by page into rb. One goroutine reads the next page
// while this one decodes and folds the last, so Postgres (sending rows) and Go (JSON
// decoding, most of replay's CPU time) work at the same time.
func foldAll(ctx context.Context, tx pgx.Tx, rb *tenants.Rebuild, batch int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan page, 1)
	readErr := make(chan error, 1)
	go func() {
		defer close(pages)
		readErr <- readPages(ctx, tx, batch, pages)
	}()
	var foldErr error
	for p := range pages {
		if foldErr != nil {
			continue // drain until the reader sees the cancellation
		}
		if foldErr = foldPage(rb, p); foldErr != nil {
			cancel()
		}
	}
	if err := <-readErr; foldErr == nil && err != nil {
		return err
	}
	return foldErr
}

// readPages sends the events after position 0, batch per query (keyset on position).
func readPages(ctx context.Context, tx pgx.Tx, batch int, out chan<- page) error {
	var after int64
	for {
		p, err := readPage(ctx, tx, after, batch)
		if err != nil {
			return err
		}
		if len(p.positions) == 0 {
			return nil
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
		if len(p.positions) < batch {
			return nil
		}
		after = p.positions[len(p.positions)-1]
	}
}

func readPage(ctx context.Context, tx pgx.Tx, after int64, batch int) (page, error) {
	rows, err := tx.Query(ctx,
		`SELECT position, payload FROM event_store WHERE position > $1 ORDER BY position LIMIT $2`, after, batch)
	if err != nil {
		return page{}, fmt.Errorf("replay after position %d: %w", after, err)
	}
	defer rows.Close()
	p := page{positions: make([]int64, 0, min(batch, 10_000)), payloads: make([][]byte, 0, min(batch, 10_000))}
	for rows.Next() {
		var pos int64
		var raw []byte // fresh each row: the page keeps them all
		if err := rows.Scan(&pos, &raw); err != nil {
			return page{}, fmt.Errorf("replay: scan event after position %d: %w", after, err)
		}
		p.positions, p.payloads = append(p.positions, pos), append(p.payloads, raw)
	}
	if err := rows.Err(); err != nil {
		return page{}, fmt.Errorf("replay after position %d: %w", after, err)
	}
	return p, nil
}

// foldPage decodes a page on all cores, then folds it into rb in position order.
func foldPage(rb *tenants.Rebuild, p page) error {
	recs, errs := make([]events.Recorded, len(p.payloads)), make([]error, len(p.payloads))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(p.payloads)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(p.payloads); i += workers {
				recs[i], errs[i] = events.Decode(p.payloads[i])
			}
		}()
	}
	wg.Wait()
	for i, pos := range p.positions {
		// The event store's own rule: an unknown type is kept (it only moves the
		// checkpoint); an undecodable payload stops the replay.
		if err := errs[i]; err != nil && !errors.Is(err, events.ErrUnknownType) {
			return fmt.Errorf("replay: event at position %d: %w", pos, err)
		}
		if err := rb.Add(pos, recs[i]); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}
