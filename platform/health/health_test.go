package health

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// scrape returns a func reading service_ready as a scrape would.
func scrape(t *testing.T, r *Readiness) func() float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r.Gauge())
	return func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		require.Len(t, mfs, 1)
		require.Equal(t, "service_ready", mfs[0].GetName())
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
}

// TestGaugeFollowsEvaluations: service_ready is 0 until a passing evaluation, follows
// each later one, and is 0 for good once draining, without a scrape running the checks.
func TestGaugeFollowsEvaluations(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	var runs atomic.Int32
	r := New()
	r.Add("db", func(context.Context) error {
		runs.Add(1)
		if failing.Load() {
			return errors.New("down")
		}
		return nil
	})
	value := scrape(t, r)
	require.Zero(t, value(), "not evaluated yet")

	ok, _ := r.Evaluate(context.Background())
	require.True(t, ok)
	require.Equal(t, 1.0, value())

	failing.Store(true)
	ok, _ = r.Evaluate(context.Background())
	require.False(t, ok)
	require.False(t, r.Ready())
	require.Zero(t, value())

	failing.Store(false)
	r.Evaluate(context.Background())
	require.Equal(t, 1.0, value())
	require.Equal(t, int32(3), runs.Load(), "reading the gauge ran a check")

	r.SetDraining()
	require.Zero(t, value())
	ok, _ = r.Evaluate(context.Background())
	require.False(t, ok)
	require.Zero(t, value())
}

// TestWatchEvaluates: Watch alone keeps Ready current, and returns when its ctx ends.
func TestWatchEvaluates(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	r := New()
	r.Add("broker", func(context.Context) error {
		if failing.Load() {
			return errors.New("down")
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Watch(ctx, 10*time.Millisecond)
	}()
	require.Eventually(t, r.Ready, 5*time.Second, 5*time.Millisecond)
	failing.Store(true)
	require.Eventually(t, func() bool { return !r.Ready() }, 5*time.Second, 5*time.Millisecond)
	cancel()
	<-done
}
