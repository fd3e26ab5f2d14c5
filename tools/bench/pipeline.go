package main

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"
)

// body is a JSON message of about size bytes. sent_ns is the publish time (unix nanos)
// from which sustained computes end-to-end latency in SQL; kind tells workloads apart.
func body(kind string, seq int, sentNS int64, size int) []byte {
	b := make([]byte, 0, size+32)
	b = fmt.Appendf(b, `{"kind":%q,"seq":%d,"sent_ns":%d,"pad":"`, kind, seq, sentNS)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

// outgoing is message i of a workload: where it goes and what it is.
type outgoing func(i int, sentNS int64) (queue string, msg amqp.Publishing)

// jsonMessage is a persistent JSON publishing with a fresh UUID as message_id, the
// identity the product stores it under.
func jsonMessage(b []byte) amqp.Publishing {
	return amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    uuid.NewString(),
		Timestamp:    time.Now(),
		Body:         b,
	}
}

// publish sends total messages with publisher confirms, pipelined: -publish-channels
// channels over both connections, each keeping up to -publish-window unconfirmed
// publishes in flight. rate > 0 paces message i to start + i/rate (sustained); 0 is
// as fast as the broker confirms. Any nack fails the call: the workload would be
// short and every figure after it wrong.
func (b *bench) publish(ctx context.Context, total int, rate float64, next outgoing) (time.Duration, error) {
	chans := min(b.opt.pubChannels, total)
	start := time.Now()
	g, ctx := errgroup.WithContext(ctx)
	for k := range chans {
		g.Go(func() error {
			ch, err := b.amqp[k%len(b.amqp)].Channel()
			if err != nil {
				return fmt.Errorf("open publish channel: %w", err)
			}
			defer ch.Close()
			if err := ch.Confirm(false); err != nil {
				return fmt.Errorf("confirm mode: %w", err)
			}
			// pending[head:] are the unconfirmed publishes, oldest first.
			pending := make([]*amqp.DeferredConfirmation, 0, 2*b.opt.pubWindow)
			head := 0
			settle := func(dc *amqp.DeferredConfirmation) error {
				ok, err := dc.WaitContext(ctx)
				if err != nil {
					return fmt.Errorf("wait for confirm: %w", err)
				}
				if !ok {
					return fmt.Errorf("broker nacked publish %d", dc.DeliveryTag)
				}
				return nil
			}
			for i := k; i < total; i += chans {
				if rate > 0 {
					due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(d):
						}
					}
				}
				if len(pending)-head == b.opt.pubWindow {
					if err := settle(pending[head]); err != nil {
						return err
					}
					head++
					if head >= b.opt.pubWindow { // compact the FIFO now and then
						pending, head = append(pending[:0], pending[head:]...), 0
					}
				}
				queue, msg := next(i, time.Now().UnixNano())
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, msg)
				if err != nil {
					return fmt.Errorf("publish to %s: %w", queue, err)
				}
				pending = append(pending, dc)
			}
			for _, dc := range pending[head:] {
				if err := settle(dc); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// rawInsertSQL is the baseline's whole storage path: one multi-row insert per batch
// into the partitioned table, duplicates dropped by the primary key.
const rawInsertSQL = `INSERT INTO messages (tenant_id, id, payload)
SELECT $1::uuid, u.id, u.payload::jsonb FROM unnest($2::uuid[], $3::text[]) AS u(id, payload)
ON CONFLICT (tenant_id, id) DO NOTHING`

// rawConsume is the smallest correct consumer: per queue `workers` amqp091 consumers,
// each on its own channel with a prefetch window; each batches whatever deliveries are
// waiting (up to -batch), commits them in one insert and then acks them all with one
// multi-ack. Nothing is acked before its row is committed. It runs until ctx ends.
func (b *bench) rawConsume(ctx context.Context, pool *pgxpool.Pool, queues map[string]string, stats *batchStats) error {
	g, ctx := errgroup.WithContext(ctx)
	n := 0
	for tenant, queue := range queues {
		for range b.opt.workers {
			conn := b.amqp[n%len(b.amqp)]
			n++
			ch, err := conn.Channel()
			if err != nil {
				return fmt.Errorf("open consume channel: %w", err)
			}
			if err := ch.Qos(b.opt.prefetch, 0, false); err != nil {
				return fmt.Errorf("qos: %w", err)
			}
			deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
			if err != nil {
				return fmt.Errorf("consume %s: %w", queue, err)
			}
			g.Go(func() error {
				// Closing the channel hands unacked deliveries back to the queue.
				defer ch.Close()
				return rawWorker(ctx, pool, ch, tenant, deliveries, b.opt.batch, b.opt.singleAck, stats)
			})
		}
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return nil //nolint:nilerr // cancellation is how a drain ends
	}
	return err
}

// batchStats counts the raw consumer's commits, to report its mean group size.
type batchStats struct{ batches, rows atomic.Int64 }

func rawWorker(ctx context.Context, pool *pgxpool.Pool, ch *amqp.Channel, tenant string, deliveries <-chan amqp.Delivery, batch int, singleAck bool, stats *batchStats) error {
	ids := make([]string, 0, batch)
	payloads := make([]string, 0, batch)
	tags := make([]uint64, 0, batch)
	for {
		var last amqp.Delivery
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return nil
			}
			last, tags = d, append(tags[:0], d.DeliveryTag)
			ids, payloads = append(ids[:0], d.MessageId), append(payloads[:0], string(d.Body))
		}
		// Group commit: take whatever else is already waiting, without waiting for more.
		// amqp091 hands deliveries over an unbuffered channel from a goroutine that
		// holds the prefetched ones, so "nothing waiting" is only true once that
		// goroutine had a chance to run: yield once before concluding it.
		yielded := false
	more:
		for len(ids) < batch {
			select {
			case d, ok := <-deliveries:
				if !ok {
					break more
				}
				last, yielded, tags = d, false, append(tags, d.DeliveryTag)
				ids, payloads = append(ids, d.MessageId), append(payloads, string(d.Body))
			default:
				if yielded {
					break more
				}
				runtime.Gosched()
				yielded = true
			}
		}
		if _, err := pool.Exec(ctx, rawInsertSQL, tenant, ids, payloads); err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // cancellation is how a drain ends
			}
			return fmt.Errorf("baseline insert of %d rows: %w", len(ids), err)
		}
		stats.batches.Add(1)
		stats.rows.Add(int64(len(ids)))
		if singleAck {
			// Diagnostic mode (-baseline-ack single): one basic.ack per delivery, as a
			// consumer that settles each message on its own does.
			for _, tag := range tags {
				if err := ch.Ack(tag, false); err != nil {
					return fmt.Errorf("ack: %w", err)
				}
			}
		} else if err := last.Ack(true); err != nil {
			return fmt.Errorf("multi-ack: %w", err)
		}
	}
}

// drainStats describes how a set of tenants' rows grew to the expected count.
type drainStats struct {
	rate       float64       // msg/s from the first stored row to the last
	wall       time.Duration // from started to the last row
	firstAfter time.Duration // from started to the first stored row
	polls      int
}

// waitStored polls the row count of tenants' partitions until it reaches want, and
// times the growth. Polls every 50ms and interpolates the instants the count left 0
// and reached want, so the figure does not depend on the poll phase. The poll costs
// the same in the baseline and the project, so their ratio is fair.
// Rows already there (base) do not count towards the rate.
func waitStored(ctx context.Context, pool *pgxpool.Pool, tenants []string, filter string, base, want int, started time.Time) (drainStats, error) {
	type sample struct {
		t time.Time
		n int
	}
	prev := sample{n: base}
	var first *sample
	var st drainStats
	for {
		t0 := time.Now()
		n, err := countMessages(ctx, pool, tenants, filter)
		if err != nil {
			return st, err
		}
		s := sample{t: t0.Add(time.Since(t0) / 2), n: n}
		st.polls++
		if n > base && first == nil {
			// The first row landed between prev and s; extrapolating back from s at
			// the initial rate would overfit, so take the midpoint.
			f := sample{t: prev.t.Add(s.t.Sub(prev.t) / 2), n: base}
			if prev.t.IsZero() {
				f.t = started
			}
			first = &f
		}
		if n >= want {
			end := s.t
			if n > prev.n && !prev.t.IsZero() {
				frac := float64(want-prev.n) / float64(n-prev.n)
				end = prev.t.Add(time.Duration(frac * float64(s.t.Sub(prev.t))))
			}
			st.wall = end.Sub(started)
			st.firstAfter = first.t.Sub(started)
			span := end.Sub(first.t).Seconds()
			st.rate = float64(want-base) / math.Max(span, 1e-3)
			return st, nil
		}
		prev = s
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("stored %d of %d rows: %w", n, want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// verifyExactlyOnce checks that tenants hold exactly want rows, all distinct ids, and
// that their queues are empty: every published message stored once, none left over or
// dead-lettered.
func (b *bench) verifyExactlyOnce(ctx context.Context, tenants []string, filter string, want int, queues []string) error {
	var n, distinct int
	err := b.pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM messages WHERE tenant_id = ANY($1::uuid[])"+filter, tenants).Scan(&n, &distinct)
	if err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	if n != want || distinct != want {
		return fmt.Errorf("exactly-once violated: %d rows, %d distinct ids, want %d", n, distinct, want)
	}
	ch, err := b.amqp[0].Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	for _, q := range queues {
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", q, err)
		}
		if st.Messages != 0 {
			return fmt.Errorf("%s still holds %d ready messages after all rows were stored", q, st.Messages)
		}
	}
	return nil
}

// countChunk bounds the tenants one count query covers: a query locks every partition
// it reads (and their indexes), and the server's lock table holds only
// max_locks_per_transaction × max_connections entries (6,400 by default), so one query
// over thousands of tenants fails with "out of shared memory".
const countChunk = 200

// countMessages counts the rows of tenants (matching filter, an " AND ..." clause).
func countMessages(ctx context.Context, pool *pgxpool.Pool, tenants []string, filter string) (int, error) {
	total := 0
	for start := 0; start < len(tenants); start += countChunk {
		chunk := tenants[start:min(start+countChunk, len(tenants))]
		var n int
		// The simple protocol plans every count for its own tenants: a prepared
		// statement's generic plan (chosen after five runs) locks every partition at
		// start-up, on PostgreSQL 15 before any pruning.
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM messages WHERE tenant_id = ANY($1::uuid[])"+filter,
			pgx.QueryExecModeSimpleProtocol, chunk).Scan(&n); err != nil {
			return 0, fmt.Errorf("count stored rows: %w", err)
		}
		total += n
	}
	return total, nil
}
