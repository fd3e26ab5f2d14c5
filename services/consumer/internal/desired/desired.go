// Package desired folds tenant events into the state the consumer must converge to:
// which tenants are live, how many workers each should run, and whether it is paused or
// draining.
package desired

import (
	"fmt"
	"sort"
	"sync"

	"github.com/multitenant/mtm/events"
)

// Tenant is one tenant's desired state.
type Tenant struct {
	ID      string
	Workers int
	Deleted bool
	// Paused: the tenant's workers stop (Workers is kept for the resume).
	Paused bool
	// Draining: a drain-then-delete was requested; the tenant runs its workers until
	// it is deleted, even if it was paused (draining outranks paused).
	Draining bool
	// Version is the highest stream version applied.
	Version int
}

// RunWorkers is how many workers the tenant should run now: none while paused, unless
// it is draining.
func (t Tenant) RunWorkers() int {
	if t.Paused && !t.Draining {
		return 0
	}
	return t.Workers
}

// State is the desired state of every tenant ever seen. Safe for concurrent use.
type State struct {
	mu      sync.Mutex
	tenants map[string]Tenant
}

// New returns an empty State.
func New() *State { return &State{tenants: map[string]Tenant{}} }

// Apply folds one event in. Events are applied idempotently by stream version: a
// version at or below the one already applied is ignored (changed=false), because
// delivery is at-least-once and replay overlaps the live subscription. Every event
// carries the full state it sets, so a later version may arrive after a gap and still
// be applied. Unknown types return an error wrapping events.ErrUnknownType.
func (s *State) Apply(rec events.Recorded) (changed bool, err error) {
	if rec.Event == nil {
		return false, fmt.Errorf("%w: %q", events.ErrUnknownType, rec.Type)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[rec.TenantID]
	if ok && rec.Version <= t.Version {
		return false, nil
	}
	if noPoolChange(rec.Event) {
		// The ingest limit and the dead-letter archive are other services' business:
		// no pool changes. The version still moves on for a known tenant; an unknown
		// one gets no entry, so a creation arriving after it is not mistaken for a
		// stale event.
		if ok {
			t.Version = rec.Version
			s.tenants[rec.TenantID] = t
		}
		return false, nil
	}
	if t.Deleted {
		// Deletion is final: a stream accepts no commands after it.
		t.Version = rec.Version
		s.tenants[rec.TenantID] = t
		return false, nil
	}
	t.ID, t.Version = rec.TenantID, rec.Version
	switch e := rec.Event.(type) {
	case events.TenantCreated:
		t.Workers = e.Workers
	case events.TenantConcurrencyChanged:
		t.Workers = e.Workers
	case events.TenantDeleted:
		t.Deleted = true
	case events.TenantPaused:
		// The command service refuses to pause a draining tenant; should such an
		// event exist anyway, draining still wins (RunWorkers).
		t.Paused = true
	case events.TenantResumed:
		t.Paused = false
	case events.TenantDeletionRequested:
		// Again on a draining tenant only moves its deadline (the command service's
		// business): no change here.
		t.Draining = true
	default:
		return false, fmt.Errorf("%w: %T", events.ErrUnknownType, rec.Event)
	}
	s.tenants[rec.TenantID] = t
	return true, nil
}

// noPoolChange reports events that never change a tenant's pool.
func noPoolChange(e events.Event) bool {
	switch e.(type) {
	case events.TenantRateLimitChanged, events.DeadLettersRedriven, events.DeadLettersPurged:
		return true
	}
	return false
}

// Get returns one tenant's state.
func (s *State) Get(id string) (Tenant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[id]
	return t, ok
}

// Live reports whether the tenant exists and is not deleted.
func (s *State) Live(id string) bool {
	t, ok := s.Get(id)
	return ok && !t.Deleted
}

// Snapshot returns every tenant, sorted by id.
func (s *State) Snapshot() []Tenant {
	s.mu.Lock()
	out := make([]Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
