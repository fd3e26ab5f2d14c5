// Package lifecycle runs a service's components under one signal-aware lifecycle with
// ordered, bounded shutdown (Runner), and gives each component's Run and Stop one stop
// handshake (Stopper).
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Component is a long-running part of a service. Run blocks until the component has
// stopped (after Stop, or on ctx cancellation); Stop asks it to finish in-flight work
// and return within ctx's deadline.
type Component struct {
	Name string
	Run  func(ctx context.Context) error
	Stop func(ctx context.Context) error
}

// Runner owns the components' goroutines.
type Runner struct {
	Log     *slog.Logger
	Timeout time.Duration
	// BeforeStop runs first on shutdown (e.g. mark the service not-ready).
	BeforeStop func()
	// DrainDelay is how long to keep serving after BeforeStop, so load balancers that
	// poll readiness see the service go not-ready before its listener closes.
	DrainDelay time.Duration
}

// Run starts every component and waits for SIGINT/SIGTERM, ctx cancellation or the
// first component failure. Then it stops the components in reverse order, all within
// Timeout. It returns nil after a clean signal-initiated shutdown.
func (r Runner) Run(ctx context.Context, comps ...Component) error {
	sigCtx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	// runCtx outlives the signal: components keep running until their Stop is called,
	// and are cancelled only if Stop overruns the shutdown deadline.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()

	failed := make(chan error, len(comps))
	var g errgroup.Group
	for _, c := range comps {
		g.Go(func() error {
			if err := c.Run(runCtx); err != nil {
				failed <- fmt.Errorf("%s: %w", c.Name, err)
				return err
			}
			return nil
		})
	}

	var cause error
	select {
	case <-sigCtx.Done():
		r.Log.Info("shutdown requested")
	case cause = <-failed:
		r.Log.Error("component failed, shutting down", "err", cause)
	}
	stopSignals()

	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), r.Timeout)
	defer cancelStop()
	if r.BeforeStop != nil {
		r.BeforeStop()
	}
	if r.DrainDelay > 0 {
		select {
		case <-time.After(r.DrainDelay):
		case <-stopCtx.Done():
		}
	}
	var stopErrs []error
	for i := len(comps) - 1; i >= 0; i-- {
		c := comps[i]
		if c.Stop == nil {
			continue
		}
		start := time.Now()
		if err := c.Stop(stopCtx); err != nil {
			stopErrs = append(stopErrs, fmt.Errorf("stop %s: %w", c.Name, err))
		}
		r.Log.Info("component stopped", "component", c.Name, "took", time.Since(start).Round(time.Millisecond))
	}
	cancelRun()

	done := make(chan struct{})
	go func() { _ = g.Wait(); close(done) }()
	select {
	case <-done:
	case <-stopCtx.Done():
		stopErrs = append(stopErrs, fmt.Errorf("components still running after %s", r.Timeout))
	}
	if cause != nil {
		return errors.Join(append([]error{cause}, stopErrs...)...)
	}
	return errors.Join(stopErrs...)
}
