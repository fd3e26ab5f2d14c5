package consumer

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/projections/tenants"
)

// backlogRefresh is how old a tenant's written backlog sample may get before an
// unchanged one is written again: readers tell a consumer that stopped sampling by a
// sampled_at much older than this, while an idle system writes nothing every pass.
const backlogRefresh = 30 * time.Second

// backlogWriteTimeout bounds one pass's write, so a stuck database delays the next
// pass's report instead of holding the reporter forever.
const backlogWriteTimeout = 10 * time.Second

// backlogStats is what a tenant pool's handlers know of its backlog beyond the queue's
// ready count: deliveries in flight and the latest delivery lag. They are the same
// values as the queue_messages_unacked and consumer_tenant_delivery_lag_seconds gauges,
// kept here because a gauge cannot be read back.
type backlogStats struct {
	unacked atomic.Int64
	lag     atomic.Uint64 // math.Float64bits of seconds
}

func (b *backlogStats) setLag(seconds float64) { b.lag.Store(math.Float64bits(seconds)) }
func (b *backlogStats) getLag() float64        { return math.Float64frombits(b.lag.Load()) }

// backlogReporter writes the sampler's passes into tenant_workers off the reconciler
// goroutine, so a slow or absent database never holds up reconciling. Only the latest
// pass waits: each pass holds every tenant, so one replaced before it was written loses
// nothing. A failed write is logged and the next pass retries it.
type backlogReporter struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	rep  *tenants.BacklogReporter
	next chan []tenants.BacklogSample
}

func newBacklogReporter(pool *pgxpool.Pool, log *slog.Logger) *backlogReporter {
	return &backlogReporter{pool: pool, log: log, rep: tenants.NewBacklogReporter(backlogRefresh),
		next: make(chan []tenants.BacklogSample, 1)}
}

// offer hands over a complete sampling pass without blocking; a pass still waiting is
// replaced. Only the reconciler calls it, so after the drain the send cannot fail.
func (b *backlogReporter) offer(pass []tenants.BacklogSample) {
	select {
	case b.next <- pass:
		return
	default:
	}
	select {
	case <-b.next:
	default:
	}
	select {
	case b.next <- pass:
	default:
	}
}

// run writes each pass it is handed until ctx ends.
func (b *backlogReporter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case pass := <-b.next:
			b.write(ctx, pass)
		}
	}
}

func (b *backlogReporter) write(ctx context.Context, pass []tenants.BacklogSample) {
	wctx, cancel := context.WithTimeout(ctx, backlogWriteTimeout)
	defer cancel()
	if _, err := b.rep.Report(wctx, b.pool, pass); err != nil && ctx.Err() == nil {
		b.log.Warn("reporting queue backlogs failed, will retry next pass", "tenants", len(pass), "err", err)
	}
}
