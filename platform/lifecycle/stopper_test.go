package lifecycle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Run that waits for Requested sees the first Stop's ctx, and Stop returns only
// after Run has returned.
func TestStopperStopWaitsForRun(t *testing.T) {
	var s Stopper
	var shutDown atomic.Bool
	runErr := make(chan error, 1)
	go func() {
		defer s.Finish()
		<-s.Requested()
		_, ok := s.StopContext().Deadline()
		assert.True(t, ok, "the first Stop's deadline bounds the shutdown")
		time.Sleep(50 * time.Millisecond) // some shutdown work
		shutDown.Store(true)
		runErr <- nil
	}()
	require.Nil(t, s.StopContext(), "no stop requested yet")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
	require.True(t, shutDown.Load(), "Stop returned before Run finished")
	require.NoError(t, <-runErr)
	require.Equal(t, ctx, s.StopContext())
	// Stopping again is fine and keeps the first ctx.
	require.NoError(t, s.Stop(context.Background()))
	require.Equal(t, ctx, s.StopContext())
}

// A Run that overruns the Stop ctx is reported, not waited for; it still finishes later.
func TestStopperStopBoundedByCtx(t *testing.T) {
	var s Stopper
	release := make(chan struct{})
	go func() {
		defer s.Finish()
		<-s.Requested()
		<-release
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)

	close(release)
	<-s.Finished()
	// A Run that did finish is not reported as overrunning, even with ctx already done.
	require.NoError(t, s.Stop(ctx))
}

// Stop before Run: Run sees the request at once and returns.
func TestStopperStopBeforeRun(t *testing.T) {
	var s Stopper
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stopErr := make(chan error, 1)
	go func() { stopErr <- s.Stop(ctx) }()
	<-s.Requested()
	require.NoError(t, s.Run(context.Background(), func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}))
	require.NoError(t, <-stopErr)
}

// Run's ctx ends on Stop or when the caller's ctx ends; Finish follows run's return.
func TestStopperRunCancellation(t *testing.T) {
	t.Run("stop", func(t *testing.T) {
		var s Stopper
		done := make(chan error, 1)
		go func() {
			done <- s.Run(context.Background(), func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			})
		}()
		require.NoError(t, s.Stop(context.Background()))
		require.ErrorIs(t, <-done, context.Canceled)
	})
	t.Run("parent", func(t *testing.T) {
		var s Stopper
		parent, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- s.Run(parent, func(ctx context.Context) error {
				<-ctx.Done()
				return nil
			})
		}()
		cancel()
		require.NoError(t, <-done)
		<-s.Finished()
		select {
		case <-s.Requested():
			t.Fatal("the parent ending is not a stop request")
		default:
		}
	})
}

type stopKey struct{}

// Concurrent Stops request once, keep one caller's ctx for Run, and all return when
// Run finishes (run with -race).
func TestStopperConcurrentStops(t *testing.T) {
	var s Stopper
	ctxs := make([]context.Context, 8)
	for i := range ctxs {
		ctxs[i] = context.WithValue(context.Background(), stopKey{}, i)
	}
	var seen context.Context
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = s.Run(context.Background(), func(ctx context.Context) error {
			<-ctx.Done()
			seen = s.StopContext()
			return nil
		})
	}()
	var wg sync.WaitGroup
	for _, ctx := range ctxs {
		wg.Go(func() { assert.NoError(t, s.Stop(ctx)) })
	}
	wg.Wait()
	<-runDone
	require.Contains(t, ctxs, seen)
	require.Equal(t, seen, s.StopContext())
}

// A Stopper-backed component fits the Runner: shutdown waits for its Run.
func TestStopperUnderRunner(t *testing.T) {
	var s Stopper
	var finished atomic.Bool
	comp := Component{
		Name: "stopper",
		Run: func(ctx context.Context) error {
			return s.Run(ctx, func(ctx context.Context) error {
				<-ctx.Done()
				time.Sleep(20 * time.Millisecond)
				finished.Store(true)
				return nil
			})
		},
		Stop: s.Stop,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Runner{Log: quiet(), Timeout: 5 * time.Second}.Run(ctx, comp) }()
	cancel()
	require.NoError(t, <-done)
	require.True(t, finished.Load())
}

func TestCancellableStopsItsRun(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	c := Cancellable("loop", func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	<-started
	require.NoError(t, c.Stop(context.Background()))
	require.NoError(t, <-done)
}

func TestEveryRunsAtOnceThenOnEachTickUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func(context.Context) { calls.Add(1) })
	}()
	require.Eventually(t, func() bool { return calls.Load() >= 3 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	n := calls.Load()
	require.Never(t, func() bool { return calls.Load() != n }, 20*time.Millisecond, time.Millisecond, "no call after ctx ended")
}
