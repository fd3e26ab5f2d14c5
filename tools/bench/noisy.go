package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
)

// noisy: a quiet tenant B publishes at -noisy-rate with probes timing publish → row
// visible, first alone, then while a busy tenant A (-noisy-workers workers) drains a
// -noisy-backlog backlog. B's latency under A's load against B alone shows whether one
// tenant's backlog slows another's messages (the group commit is shared).
func (b *bench) noisy(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	prefix := "bench-noisy-" + uuid.NewString()[:8]
	busy, err := b.createTenant(ctx, prefix+"-a", o.noisyWorkers)
	if err != nil {
		return err
	}
	quiet, err := b.createTenant(ctx, prefix+"-b", 1)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.waitRunning(wctx, []string{busy}, o.noisyWorkers); err != nil {
		return fmt.Errorf("workers of the busy tenant: %w", err)
	}
	if err := b.waitRunning(wctx, []string{quiet}, 1); err != nil {
		return fmt.Errorf("worker of the quiet tenant: %w", err)
	}

	alone, err := b.quietTenant(ctx, quiet, o.noisyFor, nil)
	if err != nil {
		return fmt.Errorf("quiet tenant alone: %w", err)
	}

	// The backlog goes in while A is paused, so the drain starts at full depth.
	if err := b.tenantCommand(ctx, busy, "pause"); err != nil {
		return err
	}
	if err := b.waitNoConsumers(wctx, busy); err != nil {
		return fmt.Errorf("pause the busy tenant: %w", err)
	}
	if _, err := b.publish(ctx, o.noisyBacklog, 0, func(i int, sent int64) (string, amqp.Publishing) {
		return rabbit.QueueName(busy), jsonMessage(body("noisy", i, sent, o.payloadBytes))
	}); err != nil {
		return err
	}
	var st drainStats
	var drainErr error
	drained := make(chan struct{})
	started := time.Now()
	if err := b.tenantCommand(ctx, busy, "resume"); err != nil {
		return err
	}
	go func() {
		defer close(drained)
		dctx, cancel := context.WithTimeout(ctx, o.drainTimeout)
		defer cancel()
		st, drainErr = waitStored(dctx, b.pool, []string{busy}, "", 0, o.noisyBacklog, started)
	}()
	loaded, err := b.quietTenant(ctx, quiet, o.drainTimeout, drained)
	<-drained
	if err != nil {
		return fmt.Errorf("quiet tenant next to the busy one: %w", err)
	}
	if drainErr != nil {
		return fmt.Errorf("busy tenant drain: %w", drainErr)
	}

	// Where B's time goes under load: created_at is when the consumer received the
	// delivery, so created_at − sent is the broker's part and the rest is storing.
	var recvP50, recvP99 float64
	if err := b.pool.QueryRow(ctx, `
		SELECT coalesce(l[1], 0), coalesce(l[2], 0) FROM (
			SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY lat) AS l
			FROM (SELECT extract(epoch FROM created_at) * 1000 - (payload->>'sent_ns')::bigint / 1e6 AS lat
			      FROM messages WHERE tenant_id = $1 AND payload->>'kind' = 'probe'
			        AND (payload->>'sent_ns')::bigint >= $2) s) p`,
		quiet, started.UnixNano()).Scan(&recvP50, &recvP99); err != nil {
		return fmt.Errorf("quiet tenant receive latency: %w", err)
	}
	aloneP99, loadedP99 := percentileMS(alone, 0.99), percentileMS(loaded, 0.99)
	r.add("B alone: probes", float64(len(alone)), "msgs")
	r.add("B alone: p50 (publish → row visible)", percentileMS(alone, 0.50), "ms")
	r.add("B alone: p99 (publish → row visible)", aloneP99, "ms")
	r.add("B next to A: probes", float64(len(loaded)), "msgs")
	r.add("B next to A: p50 (publish → row visible)", percentileMS(loaded, 0.50), "ms")
	r.atMost("B next to A: p99 (publish → row visible)", loadedP99, "ms", 50)
	if aloneP99 > 0 {
		r.atMost("B p99 next to A / alone", loadedP99/aloneP99, "×", 2)
	}
	r.add("B next to A: p50 publish → received by the consumer", recvP50, "ms")
	r.add("B next to A: p99 publish → received by the consumer", recvP99, "ms")
	r.add("A drain rate", st.rate, "msg/s")
	r.note("A: %d workers draining %d messages; B: 1 worker, %d msg/s paced plus one probe at a time (publish, then poll its row by primary key every 1 ms); B's figures under load cover A's drain only", o.noisyWorkers, o.noisyBacklog, o.noisyRate)
	return nil
}

// quietTenant publishes to tenant at -noisy-rate and times probes on it, for d or
// until until closes (the busy tenant drained), whichever comes first.
func (b *bench) quietTenant(ctx context.Context, tenant string, d time.Duration, until <-chan struct{}) ([]time.Duration, error) {
	stopProbes := make(chan struct{})
	probed := make(chan probeResult, 1)
	go func() { probed <- b.probe(ctx, []string{tenant}, stopProbes) }()

	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	go func() {
		select {
		case <-until:
			cancel()
		case <-pctx.Done():
		}
	}()
	total := int(float64(b.opt.noisyRate) * d.Seconds())
	_, err := b.publish(pctx, total, float64(b.opt.noisyRate), func(i int, sent int64) (string, amqp.Publishing) {
		return rabbit.QueueName(tenant), jsonMessage(body("quiet", i, sent, b.opt.payloadBytes))
	})
	close(stopProbes)
	pr := <-probed
	if err != nil && pctx.Err() == nil {
		return nil, err
	}
	if pr.err != nil && pctx.Err() == nil && ctx.Err() == nil {
		return nil, fmt.Errorf("latency probe: %w", pr.err)
	}
	return pr.lat, nil
}

// waitNoConsumers waits until tenant's queue has no consumer (a pause took effect).
func (b *bench) waitNoConsumers(ctx context.Context, tenant string) error {
	for {
		ch, err := b.amqp[1].Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		q, err := ch.QueueDeclarePassive(rabbit.QueueName(tenant), true, false, false, false, nil)
		_ = ch.Close()
		if err != nil {
			return fmt.Errorf("inspect queue of %s: %w", tenant, err)
		}
		if q.Consumers == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d consumers left: %w", q.Consumers, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tenantCommand is POST /tenants/{id}/{action} (pause, resume).
func (b *bench) tenantCommand(ctx context.Context, tenant, action string) error {
	status, raw, err := b.doJSON(ctx, http.MethodPost, b.commandURL("/tenants/"+tenant+"/"+action), nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s tenant: %d %s", action, status, snippet(raw))
	}
	return nil
}
