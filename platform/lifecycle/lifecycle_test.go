package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// blocker is a component that runs until stopped and records the stop order.
func blocker(name string, order *[]string, mu *sync.Mutex) Component {
	stop := make(chan struct{})
	return Component{
		Name: name,
		Run: func(ctx context.Context) error {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			return nil
		},
		Stop: func(context.Context) error {
			mu.Lock()
			*order = append(*order, name)
			mu.Unlock()
			close(stop)
			return nil
		},
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStopsInReverseOrderOnCancel(t *testing.T) {
	var order []string
	var mu sync.Mutex
	drained := false
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Runner{Log: quiet(), Timeout: 5 * time.Second, BeforeStop: func() { drained = true }}.Run(ctx,
			blocker("a", &order, &mu), blocker("b", &order, &mu), blocker("c", &order, &mu))
	}()
	cancel()
	require.NoError(t, <-done)
	require.True(t, drained)
	require.Equal(t, []string{"c", "b", "a"}, order)
}

func TestComponentFailureShutsDownOthers(t *testing.T) {
	var order []string
	var mu sync.Mutex
	boom := errors.New("boom")
	err := Runner{Log: quiet(), Timeout: 5 * time.Second}.Run(context.Background(),
		blocker("a", &order, &mu),
		Component{Name: "bad", Run: func(context.Context) error { return boom }})
	require.ErrorIs(t, err, boom)
	require.Equal(t, []string{"a"}, order)
}

func TestStopOverrunIsReported(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The component ignores its context; it is let go at test end so the leak check
	// sees only goroutines the Runner itself failed to stop.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := Component{
		Name: "stuck",
		Run:  func(context.Context) error { <-release; return nil },
		Stop: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
	}
	start := time.Now()
	err := Runner{Log: quiet(), Timeout: 100 * time.Millisecond}.Run(ctx, stuck)
	require.Error(t, err)
	require.Less(t, time.Since(start), 5*time.Second, "shutdown must be bounded by the timeout")
}

func TestDrainDelayKeepsServingNotReady(t *testing.T) {
	var order []string
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var drainedAt time.Time
	done := make(chan error)
	go func() {
		done <- Runner{Log: quiet(), Timeout: 5 * time.Second, DrainDelay: 200 * time.Millisecond,
			BeforeStop: func() { drainedAt = time.Now() }}.Run(ctx, blocker("a", &order, &mu))
	}()
	cancel()
	require.NoError(t, <-done)
	require.GreaterOrEqual(t, time.Since(drainedAt), 200*time.Millisecond, "components stop only after the drain delay")
	require.Equal(t, []string{"a"}, order)
}
