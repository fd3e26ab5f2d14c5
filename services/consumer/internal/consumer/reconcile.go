package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/deadletters"
	"github.com/multitenant/mtm/projections/messages"
	"github.com/multitenant/mtm/projections/tenants"
	"github.com/multitenant/mtm/services/consumer/internal/desired"
	"github.com/multitenant/mtm/services/consumer/internal/store"
)

// runReconciler makes running pools match desired state. It is level-triggered: it
// runs on every change and every ReconcileInterval, so whatever failed (broker or
// database away) is retried until it converges.
func (s *Service) runReconciler(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	// ctx has ended when this runs, so removals stop early.
	defer s.remWG.Wait()
	insp := &inspector{conn: s.d.Rabbit}
	defer insp.close()
	for {
		sample := false
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-s.members.Changed():
		case <-tick.C:
			sample = true
		}
		s.reconcile(ctx)
		if sample {
			s.sample(ctx, insp)
		}
	}
}

// Set-up of new tenants (partition, queues) runs setupParallel at a time, at most
// setupPerPass per pass: thousands of tenants created at once start consuming batch by
// batch instead of all at the end, and the reconciler is back for the rest (resizes,
// removals) between batches.
const (
	setupParallel = 8
	setupPerPass  = 256
)

// reconcile runs the tenants this replica owns and only those: a tenant another live
// replica owns now is handed over, a deleted one is removed by its owner (and stopped
// by any replica still running it).
func (s *Service) reconcile(ctx context.Context) {
	view, known := s.members.View()
	if !known {
		return // no tenant is run before this replica knows who else is live
	}
	if view.Rejoined {
		// Our reports were forgotten while we were cut off: write them again.
		for _, lt := range s.live {
			lt.reported = -1
		}
		s.members.AckRejoined()
	}
	snapshot := s.state.Snapshot()
	// Owners are computed once per pass: the pass asks for each tenant several times.
	owned := make(map[string]bool, len(snapshot))
	for _, t := range snapshot {
		owned[t.ID] = view.Owner(t.ID) == s.d.ReplicaID
	}
	mine := func(id string) bool { return owned[id] }
	s.handOver(ctx, mine)
	if more := s.setUp(ctx, snapshot, mine); more {
		defer s.poke()
	}
	running := 0
	for _, t := range snapshot {
		if ctx.Err() != nil {
			return
		}
		if t.Deleted {
			if owner := mine(t.ID); owner || s.live[t.ID] != nil {
				s.startRemoval(ctx, t.ID, owner)
			}
			continue
		}
		if !mine(t.ID) {
			continue
		}
		running++
		if err := s.converge(ctx, t); err != nil {
			s.log.Warn("tenant not converged, will retry", "tenant_id", t.ID, "err", err)
		}
	}
	s.m.replicasLive.Set(float64(len(view.Replicas)))
	s.m.tenantsOwned.Set(float64(running))
	s.reapHandedOver()
}

// handOver stops running the live tenants another replica owns now: their consumers
// are cancelled at once (the new owner may already consume: storage is idempotent, so
// the overlap stores nothing twice), this replica's report drops to 0, and their
// in-flight messages commit and ack in the background.
func (s *Service) handOver(ctx context.Context, mine func(string) bool) {
	for id, lt := range s.live {
		if mine(id) {
			continue
		}
		if t, ok := s.state.Get(id); ok && t.Deleted {
			continue // the removal stops it
		}
		lt.pool.Pause()
		s.handedOver = append(s.handedOver, lt.pool)
		delete(s.live, id)
		s.m.forget(id)
		s.m.handOvers.Inc()
		s.unreported[id] = lt.pool.tenant
		s.log.Info("tenant handed over to another replica", "tenant_id", id)
	}
	for id, tenant := range s.unreported {
		if s.live[id] != nil {
			delete(s.unreported, id) // ours again: converge reports it
			continue
		}
		err := tenants.ReportWorkers(ctx, s.d.Pool, tenants.WorkerReport{Tenant: tenant, Replica: s.d.ReplicaID, Current: 0})
		if err != nil {
			s.log.Warn("handed-over tenant's report not cleared, will retry", "tenant_id", id, "err", err)
			continue
		}
		delete(s.unreported, id)
	}
}

// reapHandedOver forgets handed-over pools whose in-flight messages have finished.
func (s *Service) reapHandedOver() {
	keep := s.handedOver[:0]
	for _, p := range s.handedOver {
		if !p.Idle() {
			keep = append(keep, p)
		}
	}
	clear(s.handedOver[len(keep):])
	s.handedOver = keep
}

// setUp creates the partition and declares the queues of owned live tenants not set up
// yet, up to setupPerPass of them, setupParallel at a time. It reports whether more wait.
func (s *Service) setUp(ctx context.Context, snapshot []desired.Tenant, mine func(string) bool) (more bool) {
	var todo []*liveTenant
	var ids []string
	for _, t := range snapshot {
		if t.Deleted || !mine(t.ID) {
			continue
		}
		lt := s.live[t.ID]
		if lt == nil {
			id, err := uuid.Parse(t.ID)
			if err != nil {
				s.log.Warn("tenant id is not a UUID, skipped", "tenant_id", t.ID)
				continue
			}
			lt = &liveTenant{pool: newTenantPool(t.ID, id, s.workers), reported: -1}
			s.live[t.ID] = lt
		}
		if lt.ready {
			continue
		}
		if len(todo) == s.setupPerPass {
			more = true
			break
		}
		todo, ids = append(todo, lt), append(ids, t.ID)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, setupParallel)
	ok := make([]bool, len(todo))
	for i, id := range ids {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.setUpTenant(ctx, id); err != nil {
				s.log.Warn("tenant not set up, will retry", "tenant_id", id, "err", err)
				return
			}
			ok[i] = true
		}()
	}
	wg.Wait()
	for i, lt := range todo {
		lt.ready = lt.ready || ok[i]
	}
	return more
}

// setUpTenant creates the tenant's partition, then its queues: a queue consumer never
// runs before the partition its messages go to.
func (s *Service) setUpTenant(ctx context.Context, tenantID string) error {
	if err := messages.EnsurePartition(ctx, s.d.Pool, tenantID); err != nil {
		return err
	}
	if err := s.declare(tenantID); err != nil {
		return err
	}
	s.log.Info("tenant set up", "tenant_id", tenantID)
	return nil
}

// liveTenant is a live tenant as the reconciler runs it.
type liveTenant struct {
	pool     *tenantPool
	ready    bool // partition attached and queues declared
	reported int  // worker count last written to tenant_workers (-1: never)
}

// converge sizes a set-up tenant's pool (setUp comes first: no consumer runs before
// the tenant's partition and queues exist).
func (s *Service) converge(ctx context.Context, t desired.Tenant) error {
	lt := s.live[t.ID]
	if lt == nil || !lt.ready {
		return nil
	}
	// Paused: no workers (their in-flight messages still commit and ack, see Resize);
	// the queues and partition stay. Draining runs the workers even if paused.
	want := t.RunWorkers()
	if n := lt.pool.Size(); n != want {
		s.log.Info("resizing tenant pool", "tenant_id", t.ID, "from", n, "to", want, "paused", t.Paused, "draining", t.Draining)
	}
	lt.pool.Resize(want)
	paused := 0.0
	if want == 0 && t.Paused {
		paused = 1
	}
	s.m.paused.WithLabelValues(t.ID).Set(paused)
	return s.report(ctx, lt)
}

// declare declares the tenant's queues. Queues that exist with another type (the
// queue types were changed after the tenant was created) keep it: RabbitMQ cannot
// change a queue's type, and failing here would retry the tenant forever without ever
// consuming it. The difference is logged once per tenant and process.
func (s *Service) declare(tenantID string) error {
	got, err := s.d.Topology.Declare(s.d.Rabbit.Channel, tenantID)
	if err != nil {
		return fmt.Errorf("declare queues of %s: %w", tenantID, err)
	}
	kept := got.Kept(s.d.Topology, tenantID)
	if len(kept) == 0 {
		return nil
	}
	if s.typeChangeExplained.CompareAndSwap(false, true) {
		s.log.Warn("tenant queues exist with another type or replica count than QUEUE_TYPE/DLQ_QUEUE_TYPE/QUEUE_REPLICAS ask for: they keep it: RabbitMQ cannot change either on an existing queue, so these settings apply to new tenants only",
			"tenant_id", tenantID, "queues", kept, "queue_type", s.d.Topology.Queue, "dlq_queue_type", s.d.Topology.DLQ)
		return nil
	}
	s.log.Info("tenant queues keep their existing type", "tenant_id", tenantID, "queues", kept)
	return nil
}

// declareIfLive declares a live tenant's topology again (a dead letter found its DLQ
// missing); a deleted tenant's queues are not brought back.
func (s *Service) declareIfLive(tenantID string) error {
	if !s.state.Live(tenantID) {
		return fmt.Errorf("tenant %s is not live", tenantID)
	}
	return s.declare(tenantID)
}

// report writes the count of workers actually consuming for the query side when it
// changed (while the broker is away that is fewer than desired).
func (s *Service) report(ctx context.Context, lt *liveTenant) error {
	n := lt.pool.Consuming()
	if lt.reported == n {
		return nil
	}
	if err := tenants.ReportWorkers(ctx, s.d.Pool, tenants.WorkerReport{Tenant: lt.pool.tenant, Replica: s.d.ReplicaID, Current: n, Owner: true}); err != nil {
		return err
	}
	lt.reported = n
	return nil
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

// partitionLockWait bounds each lock wait of a partition detach: a long transaction
// on messages makes the detach give up (and retry later) instead of holding the
// lock that blocks every new tenant's ATTACH.
const partitionLockWait = time.Second

// removal is a deleted tenant's clean-up state (guarded by Service.remMu).
type removal struct {
	running, done bool
	// full: this replica owns the deleted tenant and removes its queues, partition and
	// reports; otherwise it only stops its own pool (the owner removes the rest).
	full    bool
	backoff time.Duration
	retryAt time.Time
	// pool is the tenant's paused pool, handed over by the reconciler (nil if it
	// never ran one); the shutdown waits for it if the removal did not finish.
	pool *tenantPool
}

// startRemoval stops a deleted tenant's consumers at once and removes the rest in the
// background, so a slow drain or detach never holds up other tenants. A failed removal
// is retried on a later pass, with backoff.
func (s *Service) startRemoval(ctx context.Context, tenantID string, owner bool) {
	s.remMu.Lock()
	r := s.removals[tenantID]
	if r == nil {
		r = &removal{}
		s.removals[tenantID] = r
	}
	if r.done && owner && !r.full {
		r.done = false // it stopped its pool; now it owns the tenant: remove the rest
	}
	if r.done || r.running || time.Now().Before(r.retryAt) {
		s.remMu.Unlock()
		return
	}
	r.running, r.full = true, owner
	if lt := s.live[tenantID]; lt != nil {
		lt.pool.Pause()
		r.pool = lt.pool
		delete(s.live, tenantID)
	}
	p := r.pool
	s.remMu.Unlock()

	s.remWG.Add(1)
	go func() {
		defer s.remWG.Done()
		err := s.remove(ctx, tenantID, p, owner)
		s.remMu.Lock()
		defer s.remMu.Unlock()
		r.running = false
		if err == nil {
			r.done, r.pool = true, nil
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.backoff = min(max(2*r.backoff, s.cfg.ReconcileInterval), 30*time.Second)
		r.retryAt = time.Now().Add(r.backoff)
		s.log.Warn("removing deleted tenant failed, will retry", "tenant_id", tenantID, "err", err, "retry_in", r.backoff)
	}()
}

// remove waits for a deleted tenant's paused pool (in-flight messages get DrainTimeout
// to commit), then, on the tenant's owner (full), deletes its queues, partition and
// worker reports. Every step is idempotent, so a retry, a restarted consumer or a new
// owner can repeat it.
func (s *Service) remove(ctx context.Context, tenantID string, p *tenantPool, full bool) error {
	if p != nil {
		if err := s.drain(ctx, p); err != nil {
			return err
		}
	}
	if !full {
		s.m.forget(tenantID)
		return nil
	}
	ch, err := s.d.Rabbit.Channel()
	if err != nil {
		return err
	}
	err = rabbit.DeleteTenant(ch, tenantID)
	_ = ch.Close()
	if err != nil {
		return err
	}
	if err := messages.DropPartitionWithin(ctx, s.d.Pool, tenantID, partitionLockWait); err != nil {
		return err
	}
	id, err := uuid.Parse(tenantID)
	if err != nil {
		return fmt.Errorf("forget tenant workers: %w", err)
	}
	// Its dead letters go with its messages. A pass that began before the deletion
	// finishes first (the DLQ is gone, so no new rows follow).
	if err := s.arch.wait(ctx, tenantID); err != nil {
		return err
	}
	if err := deadletters.ForgetTenant(ctx, s.d.Pool, id); err != nil {
		return err
	}
	if err := tenants.ForgetWorkers(ctx, s.d.Pool, id); err != nil {
		return err
	}
	s.m.forget(tenantID)
	s.log.Info("tenant removed", "tenant_id", tenantID)
	return nil
}

// drain waits up to DrainTimeout for a paused pool's in-flight messages, then makes
// them give up.
func (s *Service) drain(ctx context.Context, p *tenantPool) error {
	drainCtx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	if p.Wait(drainCtx) == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.log.Warn("deleted tenant's messages did not finish in time; giving up on them", "tenant_id", p.tenantID)
	p.GiveUp()
	return p.Wait(ctx)
}

// sample records each live tenant's queue depth; a queue or DLQ that vanished (deleted
// by hand, broker data lost) sends the tenant back through set-up. A complete pass goes
// to the backlog reporter, which writes it to tenant_workers in the background; a pass
// the broker cut short is not reported, so sampled_at ages while the broker is away.
func (s *Service) sample(ctx context.Context, insp *inspector) {
	pass := make([]tenants.BacklogSample, 0, len(s.live))
	for id, lt := range s.live {
		if ctx.Err() != nil {
			return // shutting down: a pass over thousands of queues is not worth waiting for
		}
		if !lt.ready {
			continue
		}
		q, err := insp.inspect(rabbit.QueueName(id))
		if err == nil {
			s.m.pending.WithLabelValues(id).Set(float64(q.Messages))
			if q.Messages == 0 {
				// Nothing waits, so nothing is late (the lag is of the latest delivery).
				s.m.tenantLag.WithLabelValues(id).Set(0)
				lt.pool.stats.setLag(0)
			}
			pass = append(pass, tenants.BacklogSample{TenantID: lt.pool.tenant, Backlog: tenants.Backlog{
				Ready: int64(q.Messages), Unacked: lt.pool.stats.unacked.Load(),
				LagSeconds: lt.pool.stats.getLag(), SampledAt: time.Now(),
			}})
			// Dead letters published while the DLQ is missing would be unroutable.
			var dlq amqp.Queue
			if dlq, err = insp.inspect(rabbit.DLQName(id)); err == nil {
				s.m.deadLetters.WithLabelValues(id).Set(float64(dlq.Messages))
				if dlq.Messages > 0 {
					s.arch.request(id)
				}
			}
		}
		var amqpErr *amqp.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
			s.log.Warn("tenant queue or DLQ missing, declaring them again", "tenant_id", id)
			lt.ready = false
			s.poke()
			continue
		}
		if err != nil {
			return // broker away: try next tick
		}
	}
	s.backlog.offer(pass)
}

// inspector keeps one channel for passive declares; a 404 closes it, so it reopens.
type inspector struct {
	conn *rabbit.Conn
	ch   *amqp.Channel
}

func (i *inspector) inspect(queue string) (amqp.Queue, error) {
	if i.ch == nil || i.ch.IsClosed() {
		ch, err := i.conn.Channel()
		if err != nil {
			return amqp.Queue{}, err
		}
		i.ch = ch
	}
	return rabbit.Inspect(i.ch, queue)
}

func (i *inspector) close() {
	if i.ch != nil {
		_ = i.ch.Close()
	}
}
