package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/messages"
	"github.com/multitenant/mtm/services/consumer/internal/desired"
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
		case <-tick.C:
			sample = true
		}
		s.reconcile(ctx)
		if sample {
			s.sample(insp)
		}
	}
}

func (s *Service) reconcile(ctx context.Context) {
	for _, t := range s.state.Snapshot() {
		if ctx.Err() != nil {
			return
		}
		if t.Deleted {
			s.startRemoval(ctx, t.ID)
			continue
		}
		if err := s.converge(ctx, t); err != nil {
			s.log.Warn("tenant not converged, will retry", "tenant_id", t.ID, "err", err)
		}
	}
}

// converge sets the tenant up (partition before queue consumers) and sizes its pool.
func (s *Service) converge(ctx context.Context, t desired.Tenant) error {
	p := s.pools[t.ID]
	if p == nil {
		id, err := uuid.Parse(t.ID)
		if err != nil {
			return fmt.Errorf("tenant id is not a UUID: %w", err)
		}
		p = &pool{tenantID: t.ID, uuid: id, reported: -1}
		s.pools[t.ID] = p
	}
	if !p.ready {
		if err := messages.EnsurePartition(ctx, s.d.Pool, t.ID); err != nil {
			return err
		}
		if err := s.declare(t.ID); err != nil {
			return err
		}
		p.ready = true
		s.log.Info("tenant set up", "tenant_id", t.ID, "workers", t.Workers)
	}
	if len(p.active) != t.Workers {
		s.log.Info("resizing tenant pool", "tenant_id", t.ID, "from", len(p.active), "to", t.Workers)
	}
	s.resize(p, t.Workers)
	return s.report(ctx, p)
}

func (s *Service) declare(tenantID string) error {
	ch, err := s.d.Rabbit.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return rabbit.DeclareTenant(ch, tenantID)
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
func (s *Service) report(ctx context.Context, p *pool) error {
	n := p.consuming()
	if p.reported == n {
		return nil
	}
	_, err := s.d.Pool.Exec(ctx, `
		INSERT INTO tenant_workers (tenant_id, current, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (tenant_id) DO UPDATE SET current = EXCLUDED.current, updated_at = now()`, p.uuid, n)
	if err != nil {
		return fmt.Errorf("report workers: %w", err)
	}
	p.reported = n
	return nil
}

// partitionLockWait bounds each lock wait of a partition detach: a long transaction
// on messages makes the detach give up (and retry later) instead of holding the
// lock that blocks every new tenant's ATTACH.
const partitionLockWait = time.Second

// removal is a deleted tenant's clean-up state (guarded by Service.remMu).
type removal struct {
	running, done bool
	backoff       time.Duration
	retryAt       time.Time
}

// startRemoval stops a deleted tenant's consumers at once and removes the rest in the
// background, so a slow drain or detach never holds up other tenants. A failed removal
// is retried on a later pass, with backoff.
func (s *Service) startRemoval(ctx context.Context, tenantID string) {
	s.remMu.Lock()
	r := s.removals[tenantID]
	if r == nil {
		r = &removal{}
		s.removals[tenantID] = r
	}
	if r.done || r.running || time.Now().Before(r.retryAt) {
		s.remMu.Unlock()
		return
	}
	r.running = true
	s.remMu.Unlock()

	var retiring []*worker
	if p := s.pools[tenantID]; p != nil {
		p.stopConsuming()
		retiring = p.retiring
		delete(s.pools, tenantID)
	}
	s.remWG.Add(1)
	go func() {
		defer s.remWG.Done()
		err := s.remove(ctx, tenantID, retiring)
		s.remMu.Lock()
		defer s.remMu.Unlock()
		r.running = false
		if err == nil {
			r.done = true
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

// remove waits for a deleted tenant's retiring workers (in-flight messages get
// DrainTimeout to commit), then deletes its queues, partition and worker report. Every
// step is idempotent, so a retry or a restarted consumer can repeat it.
func (s *Service) remove(ctx context.Context, tenantID string, retiring []*worker) error {
	deadline := time.NewTimer(s.cfg.DrainTimeout)
	defer deadline.Stop()
	for _, w := range retiring {
		select {
		case <-w.done:
		case <-deadline.C:
			s.log.Warn("deleted tenant's messages did not finish in time; giving up on them", "tenant_id", tenantID)
			for _, w := range retiring {
				w.giveUp()
			}
			<-w.done
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, w := range retiring {
		<-w.done
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
	if _, err := s.d.Pool.Exec(ctx, `DELETE FROM tenant_workers WHERE tenant_id = $1`, tenantID); err != nil {
		return fmt.Errorf("forget tenant workers: %w", err)
	}
	s.m.forget(tenantID)
	s.log.Info("tenant removed", "tenant_id", tenantID)
	return nil
}

// sample records each live tenant's queue depth; a queue or DLQ that vanished (deleted
// by hand, broker data lost) sends the tenant back through set-up.
func (s *Service) sample(insp *inspector) {
	for id, p := range s.pools {
		if !p.ready {
			continue
		}
		q, err := insp.inspect(rabbit.QueueName(id))
		if err == nil {
			s.m.pending.WithLabelValues(id).Set(float64(q.Messages))
			// Dead letters published while the DLQ is missing would be unroutable.
			_, err = insp.inspect(rabbit.DLQName(id))
		}
		var amqpErr *amqp.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
			s.log.Warn("tenant queue or DLQ missing, declaring them again", "tenant_id", id)
			p.ready = false
			s.poke()
			continue
		}
		if err != nil {
			return // broker away: try next tick
		}
	}
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
