package lifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Stopper is the stop handshake between a Component's Run and Stop. Stop can come
// before Run, while Run is in any blocking call, or more than once (the Runner, then a
// test's cleanup); Run must notice it wherever it is, and Stop must wait for Run to
// finish its shutdown but never past its own deadline. Every component used to
// hand-write that (a sync.Once, a request channel, a stored context, a finished
// channel); Stopper is the one copy.
//
// Run either blocks on Requested and shuts down within StopContext's deadline, or, when
// its shutdown is plain cancellation, wraps its body in Stopper.Run. Either way Run
// returning is what Stop waits for.
//
// The zero value is ready to use. A Stopper serves a single Run.
type Stopper struct {
	init      sync.Once
	requested context.Context // cancelled by the first Stop
	request   context.CancelFunc
	finished  chan struct{}

	mu      sync.Mutex
	stopCtx context.Context // the first Stop's ctx
}

func (s *Stopper) lazyInit() {
	s.init.Do(func() {
		s.requested, s.request = context.WithCancel(context.Background())
		s.finished = make(chan struct{})
	})
}

// Requested is closed by the first Stop.
func (s *Stopper) Requested() <-chan struct{} {
	s.lazyInit()
	return s.requested.Done()
}

// StopContext is the first Stop's ctx, whose deadline bounds the shutdown; nil until
// Requested is closed.
func (s *Stopper) StopContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopCtx
}

// Finish tells Stop that Run has returned; Run defers it.
func (s *Stopper) Finish() {
	s.lazyInit()
	close(s.finished)
}

// Finished is closed by Finish.
func (s *Stopper) Finished() <-chan struct{} {
	s.lazyInit()
	return s.finished
}

// Stop requests the stop (later calls keep the first call's ctx) and waits until Run
// has finished or ctx ends.
func (s *Stopper) Stop(ctx context.Context) error {
	s.lazyInit()
	s.mu.Lock()
	if s.stopCtx == nil {
		s.stopCtx = ctx
		s.request()
	}
	s.mu.Unlock()
	select {
	case <-s.finished:
		return nil
	case <-ctx.Done():
	}
	// Both may be ready: a Run that did finish is not reported as overrunning.
	select {
	case <-s.finished:
		return nil
	default:
		return fmt.Errorf("still running: %w", ctx.Err())
	}
}

// Run runs the body of a component whose shutdown is plain cancellation: run gets a
// ctx that ends when Stop is requested (or ctx ends), and Finish follows its return.
func (s *Stopper) Run(ctx context.Context, run func(context.Context) error) error {
	s.lazyInit()
	defer s.Finish()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.requested, cancel)()
	return run(ctx)
}

// Cancellable is a component whose shutdown is plain cancellation: Stop cancels the ctx
// run got and waits for run to return, within Stop's own ctx.
func Cancellable(name string, run func(context.Context) error) Component {
	s := new(Stopper)
	return Component{
		Name: name,
		Run:  func(ctx context.Context) error { return s.Run(ctx, run) },
		Stop: s.Stop,
	}
}

// Every calls f at once and then every interval until ctx ends: periodic upkeep (a
// sweep, a prune) that reports its own errors and simply tries again next time.
func Every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
