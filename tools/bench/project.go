package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
)

// workloadTenants are the drain/sustained tenants: -tenants tenants with -workers
// workers each, created once through the command service and reused.
func (b *bench) workloadTenants(ctx context.Context) ([]string, error) {
	if b.drainTenants != nil {
		return b.drainTenants, nil
	}
	prefix := "bench-load-" + uuid.NewString()[:8]
	tenants, err := b.createTenants(ctx, prefix, b.opt.tenants, b.opt.workers, 4)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.waitRunning(wctx, tenants, b.opt.workers); err != nil {
		return nil, fmt.Errorf("workers of the load tenants: %w", err)
	}
	b.drainTenants = tenants
	return tenants, nil
}

func (b *bench) countRows(ctx context.Context, tenants []string) (int, error) {
	var n int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM messages WHERE tenant_id = ANY($1::uuid[])", tenants).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows: %w", err)
	}
	return n, nil
}

// drain: the consumer stopped (SIGTERM), the whole workload published into the
// tenants' queues, the consumer started again and timed until every row is stored.
func (b *bench) drain(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	tenants, err := b.workloadTenants(ctx)
	if err != nil {
		return err
	}
	before, err := b.countRows(ctx, tenants)
	if err != nil {
		return err
	}
	if err := b.svc.consumer.stop(ctx, o.serviceStopWait); err != nil {
		return fmt.Errorf("stop consumer: %w", err)
	}
	n := o.drainMessages
	elapsed, err := b.publish(ctx, n, 0, func(i int, sent int64) (string, amqp.Publishing) {
		return rabbit.QueueName(tenants[i%len(tenants)]), jsonMessage(body("drain", i, sent, o.payloadBytes))
	})
	if err != nil {
		return err
	}
	r.add("published", float64(n), "msgs")
	r.add("publish rate (confirms)", float64(n)/elapsed.Seconds(), "msg/s")

	started := time.Now()
	cpu0 := takeCPU(0)
	if err := b.svc.consumer.start(); err != nil {
		return err
	}
	cpu0.consumer = 0 // the new process starts from zero
	wctx, cancel := context.WithTimeout(ctx, o.drainTimeout)
	defer cancel()
	st, err := waitStored(wctx, b.pool, tenants, "", before, before+n, started)
	if err != nil {
		return fmt.Errorf("drain: %w (consumer log: %s)", err, b.svc.consumer.logTail())
	}
	cpu1 := takeCPU(b.svc.consumer.pid())
	queues := make([]string, len(tenants))
	for i, t := range tenants {
		queues[i] = rabbit.QueueName(t)
	}
	if err := b.verifyExactlyOnce(ctx, tenants, "", before+n, queues); err != nil {
		return err
	}
	// Rows counted before the first poll saw any belong to the span as well; the
	// estimator treats the first nonzero sample as the start of the drain.
	r.add("drain rate", st.rate, "msg/s")
	b.drainRate = st.rate
	r.add("drain wall time (from exec)", st.wall.Seconds(), "s")
	r.add("first row after exec", st.firstAfter.Seconds(), "s")
	r.add("exactly once", 1, "bool")
	if b.baselineRate > 0 {
		r.atLeast("ratio to quorum baseline", st.rate/b.baselineRate, "×", 0.8)
	} else {
		r.note("no quorum baseline in this run: ratio not computed")
	}
	r.addCPU(cpu0, cpu1, n)
	b.addConsumerMetrics(ctx, r)
	r.note("%d tenants × %d workers; rate = rows / (last row − first row); the consumer restarts from the event store first", o.tenants, o.workers)
	if err := b.svc.consumer.waitReady(ctx, 30*time.Second); err != nil {
		return err
	}
	return nil
}

// sustained: publishers paced at -sustained-rate for -sustained-duration with the
// consumer running, then end-to-end latency in SQL (row created_at − publish time
// carried in the payload), cross-checked by probes that time publish → row visible.
func (b *bench) sustained(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	tenants, err := b.workloadTenants(ctx)
	if err != nil {
		return err
	}
	total := int(float64(o.sustainedRate) * o.sustainedFor.Seconds())
	if total < 1 {
		return fmt.Errorf("-sustained-rate × -sustained-duration is below one message")
	}

	cpu0 := takeCPU(b.svc.consumer.pid())
	stopProbes := make(chan struct{})
	probed := make(chan probeResult, 1)
	go func() { probed <- b.probe(ctx, tenants, stopProbes) }()
	elapsed, err := b.publish(ctx, total, float64(o.sustainedRate), func(i int, sent int64) (string, amqp.Publishing) {
		return rabbit.QueueName(tenants[i%len(tenants)]), jsonMessage(body("sustained", i, sent, o.payloadBytes))
	})
	cpu1 := takeCPU(b.svc.consumer.pid())
	close(stopProbes)
	pr := <-probed
	if err != nil {
		return err
	}
	if pr.err != nil {
		return fmt.Errorf("latency probe: %w", pr.err)
	}
	achieved := float64(total) / elapsed.Seconds()
	r.atLeast("publish rate achieved", achieved, "msg/s", 0.98*float64(o.sustainedRate))

	const filter = " AND payload->>'kind' = 'sustained'"
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := waitStored(wctx, b.pool, tenants, filter, 0, total, time.Now()); err != nil {
		return fmt.Errorf("sustained rows: %w", err)
	}
	var p50, p95, p99, pmax float64
	err = b.pool.QueryRow(ctx, `
		SELECT l[1], l[2], l[3], mx FROM (
			SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lat) AS l, max(lat) AS mx
			FROM (SELECT extract(epoch FROM created_at) * 1000 - (payload->>'sent_ns')::bigint / 1e6 AS lat
			      FROM messages WHERE tenant_id = ANY($1::uuid[])`+filter+`) s) p`, tenants).Scan(&p50, &p95, &p99, &pmax)
	if err != nil {
		return fmt.Errorf("latency percentiles: %w", err)
	}
	r.add("latency p50 (created_at − sent)", p50, "ms")
	r.add("latency p95 (created_at − sent)", p95, "ms")
	r.atMost("latency p99 (created_at − sent)", p99, "ms", 50)
	r.add("latency max (created_at − sent)", pmax, "ms")
	r.add("probes", float64(len(pr.lat)), "msgs")
	r.add("probe p50 (publish → row visible)", percentileMS(pr.lat, 0.50), "ms")
	r.add("probe p95 (publish → row visible)", percentileMS(pr.lat, 0.95), "ms")
	r.atMost("probe p99 (publish → row visible)", percentileMS(pr.lat, 0.99), "ms", 50)
	r.addCPU(cpu0, cpu1, 0)
	r.note("created_at is set by the consumer to the delivery's receive time (before the group commit), so created_at − sent excludes the commit; the probes (one message at a time, polled by primary key every 1 ms) include it")
	return nil
}

type probeResult struct {
	lat []time.Duration
	err error
}

// probe publishes one extra message at a time and times it until its row is
// visible (committed), until stop closes.
func (b *bench) probe(ctx context.Context, tenants []string, stop <-chan struct{}) probeResult {
	var res probeResult
	ch, err := b.amqp[1].Channel()
	if err != nil {
		res.err = fmt.Errorf("open channel: %w", err)
		return res
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		res.err = fmt.Errorf("confirm mode: %w", err)
		return res
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return res
		case <-ctx.Done():
			res.err = ctx.Err()
			return res
		case <-time.After(20 * time.Millisecond):
		}
		t := tenants[i%len(tenants)]
		msg := jsonMessage(body("probe", i, time.Now().UnixNano(), b.opt.payloadBytes))
		sent := time.Now()
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", rabbit.QueueName(t), false, false, msg)
		if err != nil {
			res.err = fmt.Errorf("publish probe: %w", err)
			return res
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = b.waitRow(wctx, t, msg.MessageId, time.Millisecond)
		cancel()
		if err != nil {
			res.err = err
			return res
		}
		res.lat = append(res.lat, time.Since(sent))
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			res.err = fmt.Errorf("probe not confirmed (acked=%v): %w", ok, err)
			return res
		}
	}
}

// spawn: POST /tenants, publish one message to the new queue at once, poll until its
// row is stored; sequential, -spawn-tenants times.
func (b *bench) spawn(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	ch, err := b.amqp[0].Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("confirm mode: %w", err)
	}
	prefix := "bench-spawn-" + uuid.NewString()[:8]
	var total, post []time.Duration
	for i := range o.spawnTenants {
		t0 := time.Now()
		id, err := b.createTenant(ctx, fmt.Sprintf("%s-%d", prefix, i), 0)
		if err != nil {
			return err
		}
		post = append(post, time.Since(t0))
		msg := jsonMessage(body("spawn", i, time.Now().UnixNano(), o.payloadBytes))
		if err := publishOne(ctx, ch, rabbit.QueueName(id), msg); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = b.waitRow(wctx, id, msg.MessageId, 2*time.Millisecond)
		cancel()
		if err != nil {
			return fmt.Errorf("spawn %d: %w", i, err)
		}
		total = append(total, time.Since(t0))
	}
	r.add("tenants", float64(o.spawnTenants), "")
	r.add("POST /tenants p50", percentileMS(post, 0.5), "ms")
	r.add("POST /tenants p99", percentileMS(post, 0.99), "ms")
	r.atMost("POST → first row p50", percentileMS(total, 0.5), "ms", 100)
	r.atMost("POST → first row p99", percentileMS(total, 0.99), "ms", 300)
	r.note("each: POST /tenants (service default workers), one confirmed publish right after the 201, row polled by primary key every 2 ms")
	return nil
}
