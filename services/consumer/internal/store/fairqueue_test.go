package store

import (
	"testing"

	"github.com/google/uuid"

	"github.com/multitenant/mtm/projections/messages"
)

func req(tenant uuid.UUID, rows int) *request {
	r := &request{rows: make([]messages.Row, rows), done: make(chan struct{})}
	for i := range r.rows {
		r.rows[i].TenantID = tenant
	}
	return r
}

// A quiet tenant's rows queued behind a busy tenant's sixteen requests go into the very
// next batch, and the busy tenant's requests keep their order.
func TestFairQueueTakesEveryTenantBeforeASecondOfAny(t *testing.T) {
	busy, quiet := uuid.New(), uuid.New()
	q := newFairQueue()
	var busyReqs []*request
	for range 16 {
		r := req(busy, 128)
		busyReqs = append(busyReqs, r)
		q.push(r)
	}
	small := req(quiet, 2)
	q.push(small)

	first := q.take(1000)
	if len(first) < 2 || first[1] != small {
		t.Fatalf("first batch has %d requests; the quiet tenant's is not second", len(first))
	}
	rows := 0
	for _, r := range first {
		rows += len(r.rows)
	}
	if rows > 1000 {
		t.Fatalf("batch of %d rows over the bound", rows)
	}
	// The rest comes out in the busy tenant's own order, over the next batches.
	got := []*request{first[0]}
	got = append(got, first[2:]...)
	for {
		b := q.take(1000)
		if len(b) == 0 {
			break
		}
		got = append(got, b...)
	}
	if len(got) != len(busyReqs) {
		t.Fatalf("took %d busy requests, want %d", len(got), len(busyReqs))
	}
	for i := range got {
		if got[i] != busyReqs[i] {
			t.Fatalf("busy request %d out of order", i)
		}
	}
	if q.waiting != 0 || len(q.ring) != 0 || len(q.queues) != 0 {
		t.Fatalf("queue not empty: %d waiting", q.waiting)
	}
}

// A request larger than the bound is still taken (alone), never starved.
func TestFairQueueTakesOversizedRequest(t *testing.T) {
	q := newFairQueue()
	big := req(uuid.New(), 5000)
	q.push(big)
	q.push(req(uuid.New(), 1))
	b := q.take(1000)
	if len(b) != 1 || b[0] != big {
		t.Fatalf("took %d requests", len(b))
	}
	if len(q.ready) != 1 {
		t.Fatal("the request left behind must wake a flusher")
	}
	if b = q.take(1000); len(b) != 1 {
		t.Fatalf("second take got %d requests", len(b))
	}
}
