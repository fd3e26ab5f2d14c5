// Package store writes tenant messages with group commit: a few flusher goroutines
// each take every row waiting at that moment (up to MaxBatch) and insert them in one
// transaction, so throughput grows with the number of in-flight deliveries instead of
// being capped at one commit per worker. Waiting rows are taken round robin across
// tenants (fairqueue.go), so every tenant with rows waiting gets into the next batch.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/multitenant/mtm/platform/tracing"
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
	// Commit is the span context of the group commit that answered the row (invalid
	// unless the row was traced): the delivery's span links to it.
	Commit trace.SpanContext
}

// Config tunes a Writer.
type Config struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// EnsurePartition is called when an insert hits a missing partition (SQLSTATE
	// 23514). It creates the partition if the tenant is live, or returns an error
	// wrapping ErrNoPartition if the tenant may not have one. Any other error is taken
	// as transient: the rows stay in the batch and are retried in place.
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

// maxBatchTenants bounds the tenants (partitions) one transaction writes to. An insert
// locks every partition it touches and its indexes until commit, in the server's shared
// lock table, which holds only max_locks_per_transaction × max_connections entries
// (6,400 by default): a batch spread over a thousand tenants' partitions takes about
// 3,000 of them, and two such batches leave no room for anyone else ("out of shared
// memory"). Such a batch is also slow the first time each partition is touched.
const maxBatchTenants = 64

// request is one caller's rows; res is filled and done closed once all are answered.
type request struct {
	rows []messages.Row
	res  []Result
	done chan struct{}
	// spans are the rows' delivery span contexts (nil when not traced).
	spans []trace.SpanContext
}

// item is one row of a request inside a flush.
type item struct {
	req *request
	i   int
}

func (it item) row() messages.Row { return it.req.rows[it.i] }
func (it item) answer(r Result)   { it.req.res[it.i] = r }

// Writer groups rows into transactions. Run must be running for Store to return.
type Writer struct {
	cfg   Config
	queue *fairQueue
	// inserts counts insert round trips (tests check isolate's cost with it).
	inserts atomic.Int64
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
	return &Writer{cfg: cfg, queue: newFairQueue()}
}

// Store queues row and blocks until it is committed (or known to be a duplicate), its
// data is refused, or ctx ends. A database outage does not fail it: the writer retries
// the batch in place with backoff, holding the caller (and so its unacked delivery).
func (w *Writer) Store(ctx context.Context, row messages.Row) Result {
	return w.StoreBatch(ctx, []messages.Row{row})[0]
}

// StoreBatch is Store for several rows at once (one result per row, same order); the
// rows may share a transaction with other callers' rows. When ctx ends first, every
// row's result is ctx's error (some rows may still be committed later: the caller must
// then not ack them, and a redelivery is stored once). All rows of one call belong to
// one tenant: the call waits its turn among that tenant's calls.
func (w *Writer) StoreBatch(ctx context.Context, rows []messages.Row) []Result {
	return w.StoreBatchTraced(ctx, rows, nil)
}

// StoreBatchTraced is StoreBatch for traced rows: spans[i] is the span context of the
// delivery of rows[i] (or nil spans). One commit serves the rows of many deliveries,
// of many tenants, so it cannot be a child of each: its span is a child of the first
// traced row's delivery span and links to every other one, and each row's Result
// carries the commit's span context for the delivery span to link back.
func (w *Writer) StoreBatchTraced(ctx context.Context, rows []messages.Row, spans []trace.SpanContext) []Result {
	if len(rows) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return failAll(len(rows), err)
	}
	req := &request{rows: rows, res: make([]Result, len(rows)), done: make(chan struct{}), spans: spans}
	w.queue.push(req)
	select {
	case <-req.done:
		return req.res
	case <-ctx.Done():
		return failAll(len(rows), ctx.Err())
	}
}

func failAll(n int, err error) []Result {
	res := make([]Result, n)
	for i := range res {
		res[i] = Result{Err: fmt.Errorf("store message: %w", err)}
	}
	return res
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
	for _, r := range w.queue.drain() {
		for i := range r.rows {
			r.res[i] = Result{Err: ErrStopped}
		}
		close(r.done)
	}
	return nil
}

func (w *Writer) flushLoop(ctx context.Context) {
	var items []item
	for {
		select {
		case <-w.queue.ready:
		case <-ctx.Done():
			return
		}
		// Natural batching: take whatever is waiting right now, never wait for more.
		reqs, tenants := w.queue.take(w.cfg.MaxBatch, maxBatchTenants)
		if len(reqs) == 0 {
			continue
		}
		items = items[:0]
		for _, r := range reqs {
			items = appendItems(items, r)
		}
		fctx, span := commitSpan(ctx, reqs, len(items), len(tenants))
		w.flush(fctx, items)
		if span != nil {
			sc := span.SpanContext()
			for _, it := range items {
				it.req.res[it.i].Commit = sc
			}
			span.End()
		}
		w.queue.done(tenants)
		for _, r := range reqs {
			close(r.done)
		}
	}
}

// commitSpan starts the span of one group commit when any of its rows is traced (nil
// otherwise, and always while tracing is off): a child of the first traced delivery, so
// that message's trace runs from its HTTP request to the commit, linked to every other
// traced delivery in the batch (the SDK keeps the first OTEL_SPAN_LINK_COUNT_LIMIT,
// default 128). The insert's database span is its child.
func commitSpan(ctx context.Context, reqs []*request, rows, tenants int) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, nil
	}
	var parent trace.SpanContext
	var links []trace.Link
	for _, r := range reqs {
		for _, sc := range r.spans {
			switch {
			case !sc.IsValid():
			case !parent.IsValid():
				parent = sc
			default:
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	if !parent.IsValid() {
		return ctx, nil
	}
	return tracing.Tracer().Start(trace.ContextWithSpanContext(ctx, parent), "messages group commit",
		trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("mtm.commit.rows", rows), attribute.Int("mtm.commit.tenants", tenants)))
}

func appendItems(items []item, r *request) []item {
	for i := range r.rows {
		items = append(items, item{req: r, i: i})
	}
	return items
}

// flush commits batch, retrying transient failures with backoff until ctx ends, and
// answers every item.
func (w *Writer) flush(ctx context.Context, batch []item) {
	pending := batch
	backoff := 50 * time.Millisecond
	partitionFixes := 0
	for len(pending) > 0 {
		inserted, err := w.insert(ctx, pending)
		if err == nil {
			w.cfg.OnCommit(len(pending))
			for i, it := range pending {
				it.answer(Result{Inserted: inserted[i]})
			}
			return
		}
		switch {
		case isCode(err, "23514") && partitionFixes < 3:
			// A tenant in the batch has no partition. Ensure each tenant's partition;
			// rows of tenants that may not have one are answered and dropped from the
			// batch. A transient failure doing so is retried like any other.
			var fixErr error
			if pending, fixErr = w.fixPartitions(ctx, pending, err); fixErr == nil {
				partitionFixes++
				continue
			}
			err = fixErr
		case isCode(err, "23514"):
			w.cfg.Log.Error("insert keeps failing on a missing partition", "err", err)
			pending = pending[w.isolate(ctx, pending, err):]
			continue
		case isDataError(err):
			pending = pending[w.isolate(ctx, pending, err):]
			continue
		}
		if ctx.Err() != nil {
			for _, it := range pending {
				it.answer(Result{Err: ErrStopped})
			}
			return
		}
		w.cfg.OnRetry(err)
		trace.SpanFromContext(ctx).AddEvent("retry", trace.WithAttributes(attribute.String("error", err.Error())))
		w.cfg.Log.Warn("storing messages failed, retrying", "rows", len(pending), "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (w *Writer) insert(ctx context.Context, items []item) ([]bool, error) {
	rows := make([]messages.Row, len(items))
	for i, it := range items {
		rows[i] = it.row()
	}
	// One statement in autocommit is its own transaction: no BEGIN/COMMIT round trips.
	// Its result is read through ReadyForQuery, so a failed commit is an error here.
	w.inserts.Add(1)
	return messages.Insert(ctx, w.cfg.Pool, rows)
}

// fixPartitions ensures the partition of every tenant in items and returns the items
// still to insert; items of tenants that may not get a partition are answered. A
// transient error (looking the partition up or creating it) is returned with every
// item still pending, for the caller's in-place retry: it must never requeue them.
func (w *Writer) fixPartitions(ctx context.Context, items []item, cause error) ([]item, error) {
	refused := map[uuid.UUID]error{}
	seen := map[uuid.UUID]bool{}
	for _, it := range items {
		tenant := it.row().TenantID
		if seen[tenant] {
			continue
		}
		seen[tenant] = true
		ok, err := messages.PartitionExists(ctx, w.cfg.Pool, tenant.String())
		if err != nil {
			return items, err
		}
		if ok {
			continue
		}
		err = w.cfg.EnsurePartition(ctx, tenant.String())
		switch {
		case errors.Is(err, ErrNoPartition):
			refused[tenant] = err
			w.cfg.Log.Warn("tenant partition missing", "tenant_id", tenant, "err", err, "cause", cause)
		case err != nil:
			return items, fmt.Errorf("ensure partition of tenant %s: %w", tenant, err)
		}
	}
	keep := items[:0:0]
	for _, it := range items {
		if err := refused[it.row().TenantID]; err != nil {
			it.answer(Result{Err: err})
			continue
		}
		keep = append(keep, it)
	}
	return keep, nil
}

// isolate finds the rows Postgres refuses in items, whose insert as a whole failed
// with err (a row error), by bisection: one bad row among n costs about 2*log2(n)
// round trips. Refused rows are answered with an error, the rest with their outcome.
// It returns how many items (a prefix) are answered; after a transient failure the
// rest is left for the caller's retry loop.
func (w *Writer) isolate(ctx context.Context, items []item, err error) int {
	if len(items) == 1 {
		if isCode(err, "23514") {
			items[0].answer(Result{Err: fmt.Errorf("%w: %w", ErrNoPartition, err)})
		} else {
			items[0].answer(Result{Err: fmt.Errorf("%w: %w", ErrInvalidRow, err)})
		}
		return 1
	}
	mid := len(items) / 2
	done := 0
	for _, half := range [][]item{items[:mid], items[mid:]} {
		inserted, err := w.insert(ctx, half)
		switch {
		case err == nil:
			for i, it := range half {
				it.answer(Result{Inserted: inserted[i]})
			}
			done += len(half)
		case isCode(err, "23514") || isDataError(err):
			n := w.isolate(ctx, half, err)
			done += n
			if n < len(half) {
				return done
			}
		default:
			return done
		}
	}
	return done
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
