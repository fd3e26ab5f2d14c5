package tenants

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
)

// Backlog is one sample of a tenant's queue as the consumer took it.
type Backlog struct {
	// Ready is the number of messages waiting in the queue (not yet delivered).
	Ready int64
	// Unacked is the number of deliveries the consumer holds in flight.
	Unacked int64
	// LagSeconds is the delivery lag of the latest timestamped delivery, 0 when the
	// queue is empty.
	LagSeconds float64
	// SampledAt is when the consumer took the sample.
	SampledAt time.Time
}

// BacklogSample is one tenant's Backlog in a sampling pass.
type BacklogSample struct {
	TenantID uuid.UUID
	Backlog
}

// BacklogReporter writes the consumer's backlog samples into tenant_workers, where
// readers see them as Tenant.Backlog. The consumer samples every tenant every few
// seconds; with thousands of mostly idle tenants, writing every sample would be
// thousands of row updates per pass that change nothing. So it remembers what it last
// wrote per tenant and writes a sample only when a value changed or the last write is
// Refresh old (sampled_at then stays fresh enough for a reader to tell a consumer that
// stopped reporting); the samples due in one pass go out as one statement.
//
// A BacklogReporter is used by one goroutine at a time.
type BacklogReporter struct {
	refresh time.Duration
	written map[uuid.UUID]Backlog
}

// NewBacklogReporter returns a reporter that rewrites an unchanged sample once its last
// write is refresh old.
func NewBacklogReporter(refresh time.Duration) *BacklogReporter {
	return &BacklogReporter{refresh: refresh, written: map[uuid.UUID]Backlog{}}
}

// Report writes the samples of one whole sampling pass that are due (changed, never
// written, or last written refresh before) with one UPDATE, and returns how many rows
// it wrote (0 without a statement when none is due). Tenants missing from the pass are
// forgotten, so removed tenants do not pile up; a tenant that comes back is written
// again. Only an existing tenant_workers row is updated: the worker report
// (ReportWorkers) creates it, and a late sample of a removed tenant must not bring back
// the row ForgetWorkers deleted; a sample that found no row is tried again next pass.
// A sample older than the stored one is never written over it. On error nothing is
// remembered as written, so the next pass retries.
func (r *BacklogReporter) Report(ctx context.Context, db Querier, pass []BacklogSample) (int, error) {
	next := make(map[uuid.UUID]Backlog, len(pass))
	due := map[uuid.UUID]Backlog{}
	for _, s := range pass {
		b := clean(s.Backlog)
		last, ok := r.written[s.TenantID]
		if ok && !r.isDue(last, b) {
			next[s.TenantID] = last
			continue
		}
		due[s.TenantID] = b // a tenant listed twice: the later sample wins
	}
	if len(due) == 0 {
		r.written = next
		return 0, nil
	}
	ids := make([]uuid.UUID, 0, len(due))
	ready := make([]int64, 0, len(due))
	unacked := make([]int64, 0, len(due))
	lag := make([]float64, 0, len(due))
	at := make([]time.Time, 0, len(due))
	for id, b := range due {
		ids, ready, unacked = append(ids, id), append(ready, b.Ready), append(unacked, b.Unacked)
		lag, at = append(lag, b.LagSeconds), append(at, b.SampledAt)
	}
	rows, err := db.Query(ctx, `
		UPDATE tenant_workers w
		SET ready = s.ready, unacked = s.unacked, lag_seconds = s.lag_seconds, sampled_at = s.sampled_at
		FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::double precision[], $5::timestamptz[])
			AS s (tenant_id, ready, unacked, lag_seconds, sampled_at)
		WHERE w.tenant_id = s.tenant_id AND (w.sampled_at IS NULL OR w.sampled_at <= s.sampled_at)
		RETURNING w.tenant_id`, ids, ready, unacked, lag, at)
	if err != nil {
		return 0, fmt.Errorf("report backlog of %d tenants: %w", len(due), err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return 0, fmt.Errorf("report backlog of %d tenants: scan: %w", len(due), err)
		}
		next[id] = due[id]
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("report backlog of %d tenants: %w", len(due), err)
	}
	r.written = next
	return n, nil
}

// isDue reports whether b must be written after last was.
func (r *BacklogReporter) isDue(last, b Backlog) bool {
	return last.Ready != b.Ready || last.Unacked != b.Unacked || last.LagSeconds != b.LagSeconds ||
		b.SampledAt.Sub(last.SampledAt) >= r.refresh
}

// clean keeps values a reader can trust: no negative counts or lag (a gauge briefly
// off by a settle in flight), no NaN or infinite lag (they cannot go into JSON), and
// the time at the database's microsecond precision, so what is remembered as written
// equals what was stored.
func clean(b Backlog) Backlog {
	b.Ready, b.Unacked = max(b.Ready, 0), max(b.Unacked, 0)
	if math.IsNaN(b.LagSeconds) || math.IsInf(b.LagSeconds, 0) || b.LagSeconds < 0 {
		b.LagSeconds = 0
	}
	b.SampledAt = b.SampledAt.UTC().Truncate(time.Microsecond)
	return b
}
