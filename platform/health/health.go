// Package health holds a service's readiness: named dependency checks plus a draining flag
// set at shutdown so load balancers stop sending work before the server stops. The outcome
// of the latest evaluation is also exported as the service_ready gauge, so an alert sees a
// service that is up (scraped) but cannot work.
package health

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multitenant/mtm/platform/lifecycle"
)

// Check returns nil when the dependency is usable.
type Check func(ctx context.Context) error

// Readiness aggregates checks. The zero value is not usable; use New.
type Readiness struct {
	mu       sync.RWMutex
	names    []string
	checks   map[string]Check
	draining atomic.Bool
	// passed is the outcome of the latest Evaluate (false until the first), read by
	// Ready and the service_ready gauge.
	passed atomic.Bool
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

// Evaluate runs every check concurrently, records the outcome for Ready and the gauge,
// and reports whether all passed and the service is not draining.
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
	ok := true
	for _, res := range results {
		if res.Err != nil {
			ok = false
		}
	}
	r.passed.Store(ok)
	return ok && !r.Draining(), results
}

// Ready reports the latest evaluation's outcome without running the checks: false before
// the first Evaluate and from SetDraining on.
func (r *Readiness) Ready() bool { return r.passed.Load() && !r.Draining() }

// Watch evaluates the checks every interval (each run bounded by interval) until ctx
// ends, so Ready and the gauge stay current where nothing polls /readyz (docker
// compose has no probe); the caller owns it as a lifecycle component. Failures are not
// logged here: /readyz logs them, and the gauge is the signal.
func (r *Readiness) Watch(ctx context.Context, interval time.Duration) {
	lifecycle.Every(ctx, interval, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		r.Evaluate(ctx)
	})
}

// Gauge is service_ready: 1 while Ready, else 0. It reads the cached state, so a scrape
// never runs a check (a slow database cannot stall /metrics).
func (r *Readiness) Gauge() prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "service_ready",
		Help: "1 when the latest readiness evaluation (the /readyz checks, rerun every few seconds) passed and the service is not shutting down, else 0.",
	}, func() float64 {
		if r.Ready() {
			return 1
		}
		return 0
	})
}
