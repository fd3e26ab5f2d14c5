package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
	"github.com/multitenant/mtm/services/consumer/internal/store"
)

// poolDeps is what tenant pools and their handlers need from the service; every pool
// shares one. The service owns (runs and closes) all of it.
type poolDeps struct {
	sub    *amqpsub.Subscriber
	writer *store.Writer
	dl     *deadLetterer
	m      *metrics
	log    *slog.Logger
	// abort ends at the shutdown deadline: every handler stops waiting for commits.
	abort context.Context
	// poke wakes the reconciler, so the tenant_workers report follows a consumer
	// coming or going promptly.
	poke            func()
	maxBatch        int
	maxMessageBytes int
}

// tenantPool is one tenant's workers (AMQP consumers on its queue, each with its own
// handler) and owns their goroutines. Like a River producer, which fetches and works
// under separate contexts, a worker has two: ending its consume context cancels the
// consumer (basic.cancel) while its in-flight messages still commit and settle; ending
// its handle context makes those handlers stop waiting for commits.
//
// A pool is used by one goroutine at a time: the reconciler, then the removal of its
// deleted tenant or the shutdown.
type tenantPool struct {
	tenantID string
	tenant   uuid.UUID
	deps     *poolDeps
	active   []*worker
	retiring []*worker // stopped consuming, finishing in-flight messages
	// stats is what the pool's handlers know of the tenant's backlog, for the sampler.
	stats *backlogStats
}

// worker is one AMQP consumer on a tenant's queue with its own message handler.
type worker struct {
	stopConsuming context.CancelFunc // basic.cancel; in-flight messages still finish
	giveUp        context.CancelFunc // handlers stop waiting for commits
	done          chan struct{}
	// consuming is true while the worker's consumer is registered with the broker
	// (tenant_workers reports these, not the workers merely trying to subscribe).
	consuming atomic.Bool
}

func newTenantPool(tenantID string, tenant uuid.UUID, deps *poolDeps) *tenantPool {
	return &tenantPool{tenantID: tenantID, tenant: tenant, deps: deps, stats: &backlogStats{}}
}

// Size is the number of workers that consume or try to.
func (p *tenantPool) Size() int { return len(p.active) }

// Consuming counts the workers whose consumer is registered with the broker (fewer
// than Size while the broker is away).
func (p *tenantPool) Consuming() int {
	n := 0
	for _, w := range p.active {
		if w.consuming.Load() {
			n++
		}
	}
	return n
}

// Resize starts or stops workers until n consume. Shrinking only cancels the consumers
// (the broker's consumer count drops at once); their in-flight messages finish in the
// background, so a resize never waits for commits and never requeues work.
func (p *tenantPool) Resize(n int) {
	for len(p.active) < n {
		p.active = append(p.active, p.start())
	}
	for len(p.active) > n {
		w := p.active[len(p.active)-1]
		p.active = p.active[:len(p.active)-1]
		w.stopConsuming()
		p.retiring = append(p.retiring, w)
	}
	p.reap()
	p.deps.m.workers.WithLabelValues(p.tenantID).Set(float64(len(p.active)))
}

// Pause stops every worker consuming (Resize(0)). Their in-flight messages finish in
// the background (see Wait); the pool stays usable, and a later Resize consumes again.
func (p *tenantPool) Pause() { p.Resize(0) }

// Wait waits until the retired workers (all of them after Pause) have finished their
// in-flight messages, or ctx ends.
func (p *tenantPool) Wait(ctx context.Context) error {
	for _, w := range p.retiring {
		select {
		case <-w.done:
		case <-ctx.Done():
			return fmt.Errorf("tenant %s: workers still finishing: %w", p.tenantID, ctx.Err())
		}
	}
	p.retiring = nil
	return nil
}

// Idle reports whether every retired worker has finished its in-flight messages.
func (p *tenantPool) Idle() bool {
	p.reap()
	return len(p.retiring) == 0
}

// GiveUp makes the retired workers' handlers stop waiting for commits: what is not
// stored is nacked (the broker redelivers it), so Wait returns soon.
func (p *tenantPool) GiveUp() {
	for _, w := range p.retiring {
		w.giveUp()
	}
}

// reap forgets retired workers that have finished.
func (p *tenantPool) reap() {
	keep := p.retiring[:0]
	for _, w := range p.retiring {
		select {
		case <-w.done:
		default:
			keep = append(keep, w)
		}
	}
	p.retiring = keep
}

// start runs a worker; its goroutine ends once its consume context is cancelled and
// its deliveries are settled (w.done).
func (p *tenantPool) start() *worker {
	consumeCtx, stopConsuming := context.WithCancel(context.Background())
	handleCtx, giveUp := context.WithCancel(p.deps.abort)
	w := &worker{stopConsuming: stopConsuming, giveUp: giveUp, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer giveUp()
		p.consume(consumeCtx, handleCtx, w)
	}()
	return w
}

// consume keeps one consumer on the tenant's queue until consumeCtx ends,
// subscribing again (with backoff) when the channel or connection is lost.
func (p *tenantPool) consume(consumeCtx, handleCtx context.Context, w *worker) {
	d := p.deps
	queue := rabbit.QueueName(p.tenantID)
	h := newTenantHandler(d, p.tenantID, p.tenant, p.stats)
	backoff := 100 * time.Millisecond
	for consumeCtx.Err() == nil {
		msgs, err := d.sub.Subscribe(consumeCtx, queue)
		if errors.Is(err, amqpsub.ErrClosed) {
			return
		}
		if err != nil {
			d.log.Warn("worker cannot consume, retrying", "tenant_id", p.tenantID, "err", err, "retry_in", backoff)
			if !sleepCtx(consumeCtx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		// Poke the reconciler so the report follows the consumer count promptly.
		w.consuming.Store(true)
		d.poke()
		// The subscription closes its output only after every emitted message was
		// settled, so when this loop ends the handlers are done or abandoned.
		for msg := range msgs {
			batch := collect(msg, msgs, d.maxBatch)
			go h.handle(handleCtx, batch)
		}
		w.consuming.Store(false)
		d.poke()
	}
}
