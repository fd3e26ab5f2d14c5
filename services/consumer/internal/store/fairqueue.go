package store

import (
	"sync"

	"github.com/google/uuid"
)

// fairQueue holds the requests waiting for a flusher, one FIFO per tenant, and hands
// them out round robin across tenants. A batch therefore takes one request of every
// waiting tenant before a second of any: a tenant with a deep backlog and many workers
// cannot make a small tenant's rows wait behind all of its own (with one shared FIFO,
// a quiet tenant's request queued behind sixteen busy workers' requests waits for
// every one of them to commit).
type fairQueue struct {
	mu      sync.Mutex
	queues  map[uuid.UUID][]*request
	ring    []uuid.UUID // tenants with waiting requests, in turn order
	waiting int         // requests in all queues
	// ready holds a token while requests wait, so one idle flusher wakes per push.
	ready chan struct{}
}

func newFairQueue() *fairQueue {
	return &fairQueue{queues: map[uuid.UUID][]*request{}, ready: make(chan struct{}, 1)}
}

// push queues r behind the earlier requests of its tenant (its first row's tenant).
func (q *fairQueue) push(r *request) {
	tenant := r.rows[0].TenantID
	q.mu.Lock()
	if len(q.queues[tenant]) == 0 {
		q.ring = append(q.ring, tenant)
	}
	q.queues[tenant] = append(q.queues[tenant], r)
	q.waiting++
	q.mu.Unlock()
	q.signal()
}

func (q *fairQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take removes up to maxRows rows' worth of requests, round robin: each pass over the
// ring takes the oldest request of every tenant in turn. It always takes at least one
// request when any waits (a request larger than maxRows is still taken whole). A tenant
// that still has requests goes to the back of the ring, so the next batch starts with
// the tenants this one did not reach.
func (q *fairQueue) take(maxRows int) []*request {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*request
	rows := 0
	for len(q.ring) > 0 {
		tenant := q.ring[0]
		reqs := q.queues[tenant]
		r := reqs[0]
		if len(out) > 0 && rows+len(r.rows) > maxRows {
			break
		}
		out, rows = append(out, r), rows+len(r.rows)
		q.waiting--
		q.ring = q.ring[1:]
		if len(reqs) == 1 {
			delete(q.queues, tenant)
		} else {
			q.queues[tenant] = reqs[1:]
			q.ring = append(q.ring, tenant)
		}
	}
	if q.waiting > 0 {
		// More is waiting than this batch holds: wake another flusher for it.
		q.signal()
	}
	return out
}

// drain removes every waiting request (the writer is stopping).
func (q *fairQueue) drain() []*request {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*request
	for _, tenant := range q.ring {
		out = append(out, q.queues[tenant]...)
	}
	q.queues, q.ring, q.waiting = map[uuid.UUID][]*request{}, nil, 0
	return out
}
