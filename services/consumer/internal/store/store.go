// Package store writes tenant messages with group commit: a few flusher goroutines
// each take every row waiting at that moment (up to MaxBatch) and insert them in one
// transaction, so throughput grows with the number of in-flight deliveries instead of
// being capped at one commit per worker.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/projections/messages"
)

var (
	// ErrInvalidRow means Postgres refused this row's data (e.g. JSON text jsonb cannot
	// hold); retrying cannot help, the message belongs in the dead-letter queue.
	ErrInvalidRow = errors.New("message rejected by the database")
	// ErrNoPartition means the tenant has no partition and EnsurePartition declined to
	// create one (the tenant is deleted or unknown).
	ErrNoPartition = errors.New("tenant has no partition")
	// ErrStopped means the writer stopped before the row was committed.
	ErrStopped = errors.New("writer stopped")
)

// Result of storing one row.
type Result struct {
	// Inserted is false when the row already existed (a redelivery).
	Inserted bool
	Err      error
}

// Config tunes a Writer.
type Config struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// EnsurePartition is called when an insert hits a missing partition (SQLSTATE
	// 23514). It creates the partition if the tenant is live, or returns an error.
	EnsurePartition func(ctx context.Context, tenantID string) error
	// MaxBatch caps the rows per transaction (default 1000).
	MaxBatch int
	// Flushers is the number of concurrent transactions (default 2): while one
	// commits, the next batch collects and starts.
	Flushers int
	// OnRetry is told about every failed attempt that will be retried (for metrics).
	OnRetry func(err error)
	// OnCommit is told the size of every committed batch (for metrics).
	OnCommit func(rows int)
}

type request struct {
	row  messages.Row
	done chan Result
}

// Writer groups rows into transactions. Run must be running for Store to return.
type Writer struct {
	cfg  Config
	reqs chan request
}

// New returns a Writer.
func New(cfg Config) *Writer {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.Flushers <= 0 {
		cfg.Flushers = 2
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.OnRetry == nil {
		cfg.OnRetry = func(error) {}
	}
	if cfg.OnCommit == nil {
		cfg.OnCommit = func(int) {}
	}
	return &Writer{cfg: cfg, reqs: make(chan request)}
}

// Store queues row and blocks until it is committed (or known to be a duplicate), its
// data is refused, or ctx ends. A database outage does not fail it: the writer retries
// the batch in place with backoff, holding the caller (and so its unacked delivery).
func (w *Writer) Store(ctx context.Context, row messages.Row) Result {
	req := request{row: row, done: make(chan Result, 1)}
	select {
	case w.reqs <- req:
	case <-ctx.Done():
		return Result{Err: fmt.Errorf("store message %s: %w", row.ID, ctx.Err())}
	}
	select {
	case res := <-req.done:
		return res
	case <-ctx.Done():
		return Result{Err: fmt.Errorf("store message %s: %w", row.ID, ctx.Err())}
	}
}

// Run flushes until ctx ends. Stop all callers of Store first: a row still queued when
// ctx ends is answered with ErrStopped.
func (w *Writer) Run(ctx context.Context) error {
	errc := make(chan struct{}, w.cfg.Flushers)
	for range w.cfg.Flushers {
		go func() {
			defer func() { errc <- struct{}{} }()
			w.flushLoop(ctx)
		}()
	}
	for range w.cfg.Flushers {
		<-errc
	}
	return nil
}

func (w *Writer) flushLoop(ctx context.Context) {
	batch := make([]request, 0, w.cfg.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		case <-ctx.Done():
			return
		}
		// Natural batching: take whatever else is waiting right now, never wait for more.
	fill:
		for len(batch) < w.cfg.MaxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.flush(ctx, batch)
	}
}

// flush commits batch, retrying transient failures with backoff until ctx ends, and
// answers every request.
func (w *Writer) flush(ctx context.Context, batch []request) {
	pending := batch
	backoff := 50 * time.Millisecond
	partitionFixes := 0
	for len(pending) > 0 {
		inserted, err := w.insert(ctx, pending)
		if err == nil {
			w.cfg.OnCommit(len(pending))
			for i, r := range pending {
				r.done <- Result{Inserted: inserted[i]}
			}
			return
		}
		switch {
		case isCode(err, "23514") && partitionFixes < 3:
			// A tenant in the batch has no partition. Ensure each tenant's partition;
			// rows of tenants that may not have one are answered and dropped from the batch.
			partitionFixes++
			pending = w.fixPartitions(ctx, pending, err)
			continue
		case isCode(err, "23514"):
			w.cfg.Log.Error("insert keeps failing on a missing partition", "err", err)
			pending = w.isolate(ctx, pending)
			continue
		case isDataError(err):
			pending = w.isolate(ctx, pending)
			continue
		}
		if ctx.Err() != nil {
			for _, r := range pending {
				r.done <- Result{Err: ErrStopped}
			}
			return
		}
		w.cfg.OnRetry(err)
		w.cfg.Log.Warn("storing messages failed, retrying", "rows", len(pending), "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (w *Writer) insert(ctx context.Context, reqs []request) ([]bool, error) {
	rows := make([]messages.Row, len(reqs))
	for i, r := range reqs {
		rows[i] = r.row
	}
	var inserted []bool
	err := pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		var err error
		inserted, err = messages.Insert(ctx, tx, rows)
		return err
	})
	return inserted, err
}

// fixPartitions ensures the partition of every tenant in reqs and returns the requests
// still to insert; requests of tenants that cannot get a partition are answered.
func (w *Writer) fixPartitions(ctx context.Context, reqs []request, cause error) []request {
	failed := map[string]error{}
	for _, r := range reqs {
		if _, seen := failed[r.row.TenantID]; seen {
			continue
		}
		ok, err := messages.PartitionExists(ctx, w.cfg.Pool, r.row.TenantID)
		if err == nil && ok {
			failed[r.row.TenantID] = nil
			continue
		}
		if err == nil {
			err = w.cfg.EnsurePartition(ctx, r.row.TenantID)
		}
		failed[r.row.TenantID] = err
		if err != nil {
			w.cfg.Log.Warn("tenant partition missing", "tenant_id", r.row.TenantID, "err", err, "cause", cause)
		}
	}
	keep := reqs[:0:0]
	for _, r := range reqs {
		if err := failed[r.row.TenantID]; err != nil {
			r.done <- Result{Err: fmt.Errorf("%w: %w", ErrNoPartition, err)}
			continue
		}
		keep = append(keep, r)
	}
	return keep
}

// isolate inserts rows one by one to find the ones Postgres refuses; those are
// answered with an error, the rest with their outcome. Transient failures leave the
// remaining rows for the caller's retry loop.
func (w *Writer) isolate(ctx context.Context, reqs []request) []request {
	for i, r := range reqs {
		inserted, err := w.insert(ctx, []request{r})
		switch {
		case err == nil:
			r.done <- Result{Inserted: inserted[0]}
		case isCode(err, "23514"):
			r.done <- Result{Err: fmt.Errorf("%w: %w", ErrNoPartition, err)}
		case isDataError(err):
			r.done <- Result{Err: fmt.Errorf("%w: %w", ErrInvalidRow, err)}
		default:
			return reqs[i:]
		}
	}
	return nil
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// isDataError: SQLSTATE class 22 (data exception), e.g. \u0000 in jsonb text.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && len(pgErr.Code) == 5 && pgErr.Code[:2] == "22"
}
