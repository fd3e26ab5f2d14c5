package store

import (
	"sync"

	"github.com/google/uuid"
)

// fairQueue holds the requests waiting for a flusher, one FIFO per tenant, and hands
// them out so that no tenant can make another wait behind its backlog:
//
//   - round robin: a batch takes one request of every waiting tenant before a second
//     of any (with one shared FIFO, a quiet tenant's request queued behind sixteen busy
//     workers' requests waited for every one of them to commit);
//   - one batch in flight per tenant: while a tenant's batch commits, the other
//     flushers take only other tenants' rows, so a busy tenant occupies one flusher and
//     a quiet tenant's rows go out at once in a small batch of their own instead of
//     waiting for a large one.
type fairQueue struct {
	mu       sync.Mutex
	queues   map[uuid.UUID][]*request
	ring     []uuid.UUID       // tenants with waiting requests, in turn order
	inFlight map[uuid.UUID]int // batches being committed that hold the tenant's rows
	// ready holds a token while a flusher could take something, so one idle flusher
	// wakes per push.
	ready chan struct{}
}

func newFairQueue() *fairQueue {
	return &fairQueue{
		queues:   map[uuid.UUID][]*request{},
		inFlight: map[uuid.UUID]int{},
		ready:    make(chan struct{}, 1),
	}
}

// push queues r behind the earlier requests of its tenant (its first row's tenant).
func (q *fairQueue) push(r *request) {
	tenant := r.rows[0].TenantID
	q.mu.Lock()
	if len(q.queues[tenant]) == 0 {
		q.ring = append(q.ring, tenant)
	}
	q.queues[tenant] = append(q.queues[tenant], r)
	takeable := q.inFlight[tenant] == 0
	q.mu.Unlock()
	if takeable {
		q.signal()
	}
}

func (q *fairQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take removes up to maxRows rows' worth of requests of at most maxTenants tenants with
// no batch in flight, round robin, and marks those tenants in flight until done. It takes at least
// one request when any is takeable (a request larger than maxRows is still taken
// whole). Tenants it did not serve go to the front of the ring for the next batch.
func (q *fairQueue) take(maxRows, maxTenants int) ([]*request, []uuid.UUID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*request
	var served []uuid.UUID
	inBatch := map[uuid.UUID]bool{}
	rows := 0
	for full := false; !full; {
		progressed := false
		for _, t := range q.ring {
			reqs := q.queues[t]
			if q.inFlight[t] > 0 || len(reqs) == 0 {
				continue
			}
			r := reqs[0]
			if len(out) > 0 && rows+len(r.rows) > maxRows {
				full = true
				break
			}
			if !inBatch[t] && len(served) == maxTenants {
				full = true
				break
			}
			out, rows, progressed = append(out, r), rows+len(r.rows), true
			q.queues[t] = reqs[1:]
			if !inBatch[t] {
				inBatch[t] = true
				served = append(served, t)
			}
		}
		if !progressed {
			break
		}
	}
	// Next turn order: tenants this batch did not serve first, then the served ones,
	// each group in its old order; tenants with nothing left drop out.
	ring := make([]uuid.UUID, 0, len(q.ring))
	for _, servedPass := range []bool{false, true} {
		for _, t := range q.ring {
			if inBatch[t] == servedPass && len(q.queues[t]) > 0 {
				ring = append(ring, t)
			}
		}
	}
	for _, t := range q.ring {
		if len(q.queues[t]) == 0 {
			delete(q.queues, t)
		}
	}
	q.ring = ring
	for _, t := range served {
		q.inFlight[t]++
	}
	if q.takeableLocked() {
		// More is waiting than this batch holds: wake another flusher for it.
		q.signal()
	}
	return out, served
}

// done ends the flight of a batch that take returned for tenants.
func (q *fairQueue) done(tenants []uuid.UUID) {
	q.mu.Lock()
	for _, t := range tenants {
		if q.inFlight[t]--; q.inFlight[t] <= 0 {
			delete(q.inFlight, t)
		}
	}
	takeable := q.takeableLocked()
	q.mu.Unlock()
	if takeable {
		q.signal()
	}
}

// takeableLocked reports whether a tenant without a batch in flight has requests.
func (q *fairQueue) takeableLocked() bool {
	for _, t := range q.ring {
		if q.inFlight[t] == 0 && len(q.queues[t]) > 0 {
			return true
		}
	}
	return false
}

// drain removes every waiting request (the writer is stopping).
func (q *fairQueue) drain() []*request {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*request
	for _, tenant := range q.ring {
		out = append(out, q.queues[tenant]...)
	}
	q.queues, q.ring = map[uuid.UUID][]*request{}, nil
	return out
}
