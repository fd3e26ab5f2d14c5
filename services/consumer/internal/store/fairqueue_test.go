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

func rowsOf(reqs []*request) int {
	n := 0
	for _, r := range reqs {
		n += len(r.rows)
	}
	return n
}

// A quiet tenant's rows queued behind a busy tenant's sixteen requests go into the very
// next batch, and the busy tenant's requests keep their order over the batches.
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

	first, tenants := q.take(1000, 64)
	if len(first) < 2 || first[1] != small {
		t.Fatalf("first batch has %d requests; the quiet tenant's is not second", len(first))
	}
	if n := rowsOf(first); n > 1000 {
		t.Fatalf("batch of %d rows over the bound", n)
	}
	if len(tenants) != 2 {
		t.Fatalf("batch holds %d tenants, want 2", len(tenants))
	}
	got := []*request{first[0]}
	got = append(got, first[2:]...)
	q.done(tenants)
	for {
		b, tenants := q.take(1000, 64)
		if len(b) == 0 {
			break
		}
		got = append(got, b...)
		q.done(tenants)
	}
	if len(got) != len(busyReqs) {
		t.Fatalf("took %d busy requests, want %d", len(got), len(busyReqs))
	}
	for i := range got {
		if got[i] != busyReqs[i] {
			t.Fatalf("busy request %d out of order", i)
		}
	}
	if len(q.ring) != 0 || len(q.queues) != 0 || len(q.inFlight) != 0 {
		t.Fatalf("queue not empty: ring %d, queues %d, in flight %d", len(q.ring), len(q.queues), len(q.inFlight))
	}
}

// While a busy tenant's batch commits, another flusher gets only the quiet tenant's
// rows (a small batch of their own), and the busy tenant's next batch waits for done.
func TestFairQueueOneBatchInFlightPerTenant(t *testing.T) {
	busy, quiet := uuid.New(), uuid.New()
	q := newFairQueue()
	for range 16 {
		q.push(req(busy, 128))
	}
	<-q.ready
	first, busyOnly := q.take(1000, 64)
	if len(busyOnly) != 1 || busyOnly[0] != busy || rowsOf(first) != 896 {
		t.Fatalf("first batch: %d rows of %v", rowsOf(first), busyOnly)
	}
	select {
	case <-q.ready:
		t.Fatal("a flusher was woken for a tenant already in flight")
	default:
	}
	if b, _ := q.take(1000, 64); len(b) != 0 {
		t.Fatalf("took %d more requests of a tenant in flight", len(b))
	}

	small := req(quiet, 2)
	q.push(small)
	select {
	case <-q.ready:
	default:
		t.Fatal("the quiet tenant's request woke no flusher")
	}
	second, tenants := q.take(1000, 64)
	if len(second) != 1 || second[0] != small || len(tenants) != 1 || tenants[0] != quiet {
		t.Fatalf("second batch: %d requests of %v, want the quiet tenant's alone", len(second), tenants)
	}
	q.done(tenants)
	q.done(busyOnly)
	select {
	case <-q.ready:
	default:
		t.Fatal("the busy tenant's waiting rows woke no flusher once its batch was done")
	}
	if b, _ := q.take(1000, 64); rowsOf(b) != 7*128 {
		t.Fatalf("next busy batch has %d rows", rowsOf(b))
	}
}

// A request larger than the bound is still taken (alone), never starved.
func TestFairQueueTakesOversizedRequest(t *testing.T) {
	q := newFairQueue()
	big := req(uuid.New(), 5000)
	q.push(big)
	q.push(req(uuid.New(), 1))
	<-q.ready
	b, _ := q.take(1000, 64)
	if len(b) != 1 || b[0] != big {
		t.Fatalf("took %d requests", len(b))
	}
	if len(q.ready) != 1 {
		t.Fatal("the request left behind must wake a flusher")
	}
	if b, _ = q.take(1000, 64); len(b) != 1 {
		t.Fatalf("second take got %d requests", len(b))
	}
}

// A batch writes to at most maxTenants tenants; the rest go first in the next one.
func TestFairQueueBoundsTenantsPerBatch(t *testing.T) {
	q := newFairQueue()
	var tenants []uuid.UUID
	for range 5 {
		id := uuid.New()
		tenants = append(tenants, id)
		q.push(req(id, 1))
	}
	b, served := q.take(1000, 2)
	if len(b) != 2 || len(served) != 2 || served[0] != tenants[0] || served[1] != tenants[1] {
		t.Fatalf("first batch: %d requests of %v", len(b), served)
	}
	b, served = q.take(1000, 2)
	if len(b) != 2 || served[0] != tenants[2] || served[1] != tenants[3] {
		t.Fatalf("second batch: %d requests of %v", len(b), served)
	}
	if b, _ = q.take(1000, 2); len(b) != 1 {
		t.Fatalf("third batch: %d requests", len(b))
	}
}
