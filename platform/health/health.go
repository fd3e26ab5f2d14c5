// Package health holds a service's readiness: named dependency checks plus a draining flag
// set at shutdown so load balancers stop sending work before the server stops.
package health

import (
	"context"
	"sync"
	"sync/atomic"
)

// Check returns nil when the dependency is usable.
type Check func(ctx context.Context) error

// Readiness aggregates checks. The zero value is not usable; use New.
type Readiness struct {
	mu       sync.RWMutex
	names    []string
	checks   map[string]Check
	draining atomic.Bool
}

// New returns a Readiness without checks.
func New() *Readiness { return &Readiness{checks: map[string]Check{}} }

// Add registers a named check.
func (r *Readiness) Add(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.checks[name]; !ok {
		r.names = append(r.names, name)
	}
	r.checks[name] = c
}

// SetDraining makes the service report not-ready from now on.
func (r *Readiness) SetDraining() { r.draining.Store(true) }

// Draining reports whether shutdown has begun.
func (r *Readiness) Draining() bool { return r.draining.Load() }

// Result is one check's outcome.
type Result struct {
	Name string
	Err  error
}

// Evaluate runs every check concurrently and reports whether all passed.
func (r *Readiness) Evaluate(ctx context.Context) (bool, []Result) {
	r.mu.RLock()
	names := append([]string(nil), r.names...)
	checks := make([]Check, len(names))
	for i, n := range names {
		checks[i] = r.checks[n]
	}
	r.mu.RUnlock()

	results := make([]Result, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = Result{Name: names[i], Err: checks[i](ctx)}
		}()
	}
	wg.Wait()
	ok := !r.Draining()
	for _, res := range results {
		if res.Err != nil {
			ok = false
		}
	}
	return ok, results
}
