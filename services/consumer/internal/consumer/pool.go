package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/multitenant/mtm/platform/payload"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/messages"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
	"github.com/multitenant/mtm/services/consumer/internal/store"
)

// worker is one AMQP consumer on a tenant's queue with its own message handlers.
type worker struct {
	stopConsuming context.CancelFunc // basic.cancel; in-flight messages still finish
	giveUp        context.CancelFunc // handlers stop waiting for commits
	done          chan struct{}
	// consuming is true while the worker's consumer is registered with the broker
	// (tenant_workers reports these, not the workers merely trying to subscribe).
	consuming atomic.Bool
}

// consuming counts the pool's workers whose consumer is registered.
func (p *pool) consuming() int {
	n := 0
	for _, w := range p.active {
		if w.consuming.Load() {
			n++
		}
	}
	return n
}

// pool is one tenant's workers. Only the reconciler (and shutdown) touch it.
type pool struct {
	tenantID string
	uuid     uuid.UUID
	ready    bool // partition attached and queues declared
	active   []*worker
	retiring []*worker // stopped consuming, finishing in-flight messages
	reported int       // worker count last written to tenant_workers (-1: never)
}

func (p *pool) stopConsuming() {
	for _, w := range p.active {
		w.stopConsuming()
	}
	p.retiring = append(p.retiring, p.active...)
	p.active = nil
}

// reap forgets retired workers that have finished.
func (p *pool) reap() {
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

// resize starts or stops workers until n consume. Shrinking only cancels the consumers
// (the broker's consumer count drops at once); their in-flight messages finish in the
// background, so a resize never waits for commits and never requeues work.
func (s *Service) resize(p *pool, n int) {
	for len(p.active) < n {
		p.active = append(p.active, s.startWorker(p))
	}
	for len(p.active) > n {
		w := p.active[len(p.active)-1]
		p.active = p.active[:len(p.active)-1]
		w.stopConsuming()
		p.retiring = append(p.retiring, w)
	}
	p.reap()
	s.m.workers.WithLabelValues(p.tenantID).Set(float64(len(p.active)))
}

func (s *Service) startWorker(p *pool) *worker {
	consumeCtx, stopConsuming := context.WithCancel(context.Background())
	handleCtx, giveUp := context.WithCancel(s.abortCtx)
	w := &worker{stopConsuming: stopConsuming, giveUp: giveUp, done: make(chan struct{})}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		defer close(w.done)
		defer giveUp()
		s.runWorker(consumeCtx, handleCtx, w, p.tenantID, p.uuid)
	}()
	return w
}

// runWorker keeps one consumer on the tenant's queue until consumeCtx ends,
// subscribing again (with backoff) when the channel or connection is lost.
func (s *Service) runWorker(consumeCtx, handleCtx context.Context, w *worker, tenantID string, tenant uuid.UUID) {
	queue := rabbit.QueueName(tenantID)
	t := s.newTenantHandler(tenantID, tenant)
	backoff := 100 * time.Millisecond
	for consumeCtx.Err() == nil {
		msgs, err := s.sub.Subscribe(consumeCtx, queue)
		if errors.Is(err, amqpsub.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("worker cannot consume, retrying", "tenant_id", tenantID, "err", err, "retry_in", backoff)
			if !sleepCtx(consumeCtx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		// Poke the reconciler so the report follows the consumer count promptly.
		w.consuming.Store(true)
		s.poke()
		// The subscription closes its output only after every emitted message was
		// settled, so when this loop ends the handlers are done or abandoned.
		for msg := range msgs {
			batch := collect(msg, msgs, s.cfg.MaxBatch)
			go t.handle(handleCtx, batch)
		}
		w.consuming.Store(false)
		s.poke()
	}
}

// collect returns first and every further message already waiting in msgs (up to max),
// without waiting for more: the batch is whatever arrived while the last one was
// being handed over (natural batching, no timer on the latency path).
func collect(first *message.Message, msgs <-chan *message.Message, max int) []*message.Message {
	batch := []*message.Message{first}
	// The subscription hands deliveries over an unbuffered channel from its own
	// goroutine, so "nothing waiting" is only true once that goroutine had a chance
	// to run: yield once before concluding it.
	yielded := false
	for len(batch) < max {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch
			}
			batch, yielded = append(batch, m), false
		default:
			if yielded {
				return batch
			}
			runtime.Gosched()
			yielded = true
		}
	}
	return batch
}

// tenantHandler handles one worker's deliveries; its metric children are looked up once.
type tenantHandler struct {
	s        *Service
	tenantID string
	tenant   uuid.UUID
	outcomes map[string]prometheus.Counter
}

func (s *Service) newTenantHandler(tenantID string, tenant uuid.UUID) *tenantHandler {
	t := &tenantHandler{s: s, tenantID: tenantID, tenant: tenant, outcomes: map[string]prometheus.Counter{}}
	for _, o := range []string{OutcomeStored, OutcomeDuplicate, OutcomeDeadLettered, OutcomeRequeued, OutcomeAbandoned} {
		t.outcomes[o] = s.m.processed.WithLabelValues(tenantID, o)
	}
	return t
}

// handle stores a batch of deliveries with one StoreBatch and settles each exactly once.
// Messages that cannot be stored (too large, not JSON) are dead-lettered on their own.
func (t *tenantHandler) handle(ctx context.Context, batch []*message.Message) {
	s := t.s
	rows := make([]messages.Row, 0, len(batch))
	keep := batch[:0]
	for _, msg := range batch {
		if reason := s.refuse(msg); reason != "" {
			go t.deadLetter(ctx, msg, reason)
			continue
		}
		id, err := MessageID(t.tenant, msg.Metadata.Get(amqpsub.MetaMessageID))
		if err != nil {
			msg.Nack()
			t.settleOne(OutcomeRequeued, receivedAt(msg))
			continue
		}
		at := receivedAt(msg)
		rows = append(rows, messages.Row{TenantID: t.tenant, ID: id, Payload: msg.Payload, CreatedAt: at})
		keep = append(keep, msg)
	}
	if len(rows) == 0 {
		return
	}
	results := s.writer.StoreBatch(ctx, rows)
	// Settle newest first: the subscription acks the longest settled prefix with one
	// multiple ack, so the oldest delivery settling last sends the batch as one ack.
	for i := len(keep) - 1; i >= 0; i-- {
		msg, res, at := keep[i], results[i], rows[i].CreatedAt
		switch {
		case res.Err == nil && res.Inserted:
			msg.Ack()
			t.settleOne(OutcomeStored, at)
		case res.Err == nil:
			msg.Ack()
			t.settleOne(OutcomeDuplicate, at)
		case errors.Is(res.Err, store.ErrInvalidRow):
			go t.deadLetter(ctx, msg, "rejected_by_database: payload cannot be stored as jsonb")
		case errors.Is(res.Err, store.ErrNoPartition):
			// The tenant is deleted or not set up: requeue; the quorum queue dead-letters it
			// after x-delivery-limit, so this never loops forever.
			s.log.Warn("no partition for message, requeueing", "tenant_id", t.tenantID, "err", res.Err)
			msg.Nack()
			t.settleOne(OutcomeRequeued, at)
		default:
			// Shutdown deadline or a pool forced down: not stored, so not acked. The
			// broker redelivers it (and counts that delivery).
			msg.Nack()
			t.settleOne(OutcomeAbandoned, at)
		}
	}
}

// settleOne records a settled delivery's outcome and its receive-to-settle time.
func (t *tenantHandler) settleOne(outcome string, received time.Time) {
	t.outcomes[outcome].Inc()
	t.s.m.latency.Observe(time.Since(received).Seconds())
}

// deadLetter moves msg to the DLQ (acking it) and records the outcome.
func (t *tenantHandler) deadLetter(ctx context.Context, msg *message.Message, reason string) {
	t.settleOne(t.s.deadLetter(ctx, t.tenantID, msg, reason), receivedAt(msg))
}

// refuse returns why msg can never be stored ("" if it can).
func (s *Service) refuse(msg *message.Message) string {
	if len(msg.Payload) > s.d.MaxMessageBytes {
		return "too_large: body of " + strconv.Itoa(len(msg.Payload)) + " bytes exceeds MAX_MESSAGE_BYTES=" + strconv.Itoa(s.d.MaxMessageBytes)
	}
	if err := payload.Check(msg.Payload); err != nil {
		return "invalid_json: " + err.Error()
	}
	return ""
}

func receivedAt(msg *message.Message) time.Time {
	t, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(amqpsub.MetaReceivedAt))
	if err != nil {
		return time.Now()
	}
	return t
}

// deadLetter publishes msg to the tenant's DLQ (retrying while the broker is away) and
// acks the original once the copy is confirmed.
func (s *Service) deadLetter(ctx context.Context, tenantID string, msg *message.Message, reason string) string {
	backoff := 100 * time.Millisecond
	for {
		err := s.dl.publish(ctx, tenantID, msg, reason)
		if err == nil {
			msg.Ack()
			s.log.Info("message dead-lettered", "tenant_id", tenantID, "message_id", msg.Metadata.Get(amqpsub.MetaMessageID), "reason", reason)
			return OutcomeDeadLettered
		}
		s.log.Warn("dead-lettering failed, retrying", "tenant_id", tenantID, "err", err)
		if !sleepCtx(ctx, backoff) {
			msg.Nack()
			return OutcomeAbandoned
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// ensurePartitionIfLive backs the writer's 23514 recovery: only a live tenant gets its
// partition back, so a late message never resurrects a deleted tenant's table.
func (s *Service) ensurePartitionIfLive(ctx context.Context, tenantID string) error {
	t, ok := s.state.Get(tenantID)
	if !ok || t.Deleted {
		return fmt.Errorf("%w: tenant %s is not live", store.ErrNoPartition, tenantID)
	}
	return messages.EnsurePartition(ctx, s.d.Pool, tenantID)
}
