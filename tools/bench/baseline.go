package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/messages"
)

// baseline is the raw pipeline on the drain workload: fresh tenants with partitions
// attached like the product's, queues declared with the product's own topology code
// (quorum) or as plain durable classic queues, all messages published first, then the
// raw consumer started and timed until every row is stored exactly once.
func (b *bench) baseline(ctx context.Context, r *Result, quorum bool) error {
	o := b.opt
	tenants := make([]string, o.tenants)
	queues := make(map[string]string, o.tenants)
	names := make([]string, 0, o.tenants)
	for i := range tenants {
		tenants[i] = uuid.NewString()
		if quorum {
			queues[tenants[i]] = rabbit.QueueName(tenants[i])
		} else {
			queues[tenants[i]] = "bench_classic_" + tenants[i] + "_queue"
		}
		names = append(names, queues[tenants[i]])
	}
	if quorum {
		if err := b.trackTenants(ctx, tenants...); err != nil {
			return err
		}
	} else if err := b.track(ctx, names...); err != nil {
		return err
	}
	ch, err := b.amqp[0].Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	for _, t := range tenants {
		if err := messages.EnsurePartition(ctx, b.pool, t); err != nil {
			return err
		}
		if quorum {
			err = rabbit.DefaultTopology.DeclareTenant(ch, t)
		} else {
			_, err = ch.QueueDeclare(queues[t], true, false, false, false, amqp.Table{"x-queue-type": "classic"})
		}
		if err != nil {
			return fmt.Errorf("declare queue of %s: %w", t, err)
		}
	}
	// The baseline's rows and queues go as soon as it is done: the scenarios after it
	// should not count, scan or share a broker with them.
	defer func() {
		cctx := context.WithoutCancel(ctx)
		for _, t := range tenants {
			if err := messages.DropPartition(cctx, b.pool, t); err != nil {
				b.log.Warn("drop baseline partition", "err", err)
			}
		}
		if err := b.deleteQueues(cctx, names); err != nil {
			b.log.Warn("delete baseline queues", "err", err)
		}
	}()

	n := o.drainMessages
	elapsed, err := b.publish(ctx, n, 0, func(i int, sent int64) (string, amqp.Publishing) {
		return queues[tenants[i%len(tenants)]], jsonMessage(body("baseline", i, sent, o.payloadBytes))
	})
	if err != nil {
		return err
	}
	r.add("published", float64(n), "msgs")
	r.add("publish rate (confirms)", float64(n)/elapsed.Seconds(), "msg/s")

	pool, err := postgres.NewPool(ctx, o.databaseURL, int32(o.baselineConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("baseline pool: %w", err)
	}
	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	consumed := make(chan error, 1)
	started := time.Now()
	cpu0 := takeCPU(0)
	var stats batchStats
	go func() { consumed <- b.rawConsume(cctx, pool, queues, &stats) }()

	wctx, cancel := context.WithTimeout(ctx, o.drainTimeout)
	defer cancel()
	type waitResult struct {
		st  drainStats
		err error
	}
	waited := make(chan waitResult, 1)
	go func() {
		st, err := waitStored(wctx, b.pool, tenants, "", 0, n, started)
		waited <- waitResult{st, err}
	}()
	var st drainStats
	var cpu1 cpuSnapshot
	select {
	case w := <-waited:
		if w.err != nil {
			stopConsumers()
			<-consumed //nolint:errcheck // w.err is the failure to report
			return w.err
		}
		st = w.st
		cpu1 = takeCPU(0)
	case err := <-consumed:
		cancel()
		<-waited
		return fmt.Errorf("baseline consumer stopped: %w", err)
	}
	// Verify while the consumers still run: stopping them first could hand a
	// committed-but-not-yet-acked batch back to the queue.
	verr := b.verifyExactlyOnce(ctx, tenants, "", n, names)
	stopConsumers()
	if err := <-consumed; err != nil {
		return err
	}
	if verr != nil {
		return verr
	}
	r.add("drain rate", st.rate, "msg/s")
	r.add("drain wall time", st.wall.Seconds(), "s")
	r.add("exactly once", 1, "bool")
	if n := stats.batches.Load(); n > 0 {
		r.add("mean rows per commit", float64(stats.rows.Load())/float64(n), "rows")
	}
	r.addCPU(cpu0, cpu1, n)
	kind := "classic"
	if quorum {
		kind = "quorum"
		b.baselineRate = st.rate
	}
	ackMode := "one multi-ack per commit"
	if o.singleAck {
		ackMode = "one ack per delivery (diagnostic)"
	}
	r.note("%s queues; %d tenants × %d amqp091 consumers, prefetch %d, batch ≤ %d, %d pgx conns, %s; rate = rows / (last row − first row), wall from consumer start; the harness is the consumer here (its CPU includes the poll)", kind, o.tenants, o.workers, o.prefetch, o.batch, o.baselineConns, ackMode)
	return nil
}
