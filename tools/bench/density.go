package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/projections/messages"
)

// density: -density-tenants tenants with one worker each, created through the command
// service and timed until every one consumes; then the per-tenant cost in the consumer
// (RSS), the broker (memory, file handles) and Postgres (planning and execution of a
// page query and a group insert over that many partitions); then a
// -density-messages drain spread over all of them, and a fresh AMQP handshake and every
// /readyz to show nothing wedged.
func (b *bench) density(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	pid := b.svc.consumer.pid()
	rss0, err := rssMiB(pid)
	if err != nil {
		return err
	}
	node0, err := b.brokerNode(ctx)
	if err != nil {
		return unavailable("broker node statistics (management API %s): %v", o.managementURL, err)
	}
	// Each quorum queue holds about 3 handles of the broker's file-handle cache; when
	// it is used up the broker stops answering new connections. Refuse to drive it there.
	perTenant := int64(quorumQueuesPerTenant()) * 3
	used0, limit, err := fileHandleCache(ctx)
	if err == nil {
		if need := used0 + int64(o.densityTenants)*perTenant; need > limit {
			return unavailable("the broker's file-handle cache (%d, about 0.9 × its file limit) is too small for %d tenants (about %d handles): restart it with a higher file limit (scripts/deps.sh)", limit, o.densityTenants, need)
		}
	} else if need := node0.FDUsed + int64(o.densityTenants)*perTenant; need > node0.FDTotal {
		return unavailable("the broker's file limit (%d) is too low for %d tenants: restart it with a higher limit (scripts/deps.sh)", node0.FDTotal, o.densityTenants)
	}

	// POSTs with bounded concurrency, each timed.
	t0 := time.Now()
	ids := make([]string, o.densityTenants)
	lat := make([]time.Duration, o.densityTenants)
	prefix := "bench-density-" + uuid.NewString()[:8]
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for range o.densityParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				start := time.Now()
				id, err := b.createTenant(ctx, fmt.Sprintf("%s-%d", prefix, i), 1)
				lat[i] = time.Since(start)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				ids[i] = id
			}
		}()
	}
	for i := range o.densityTenants {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	posted := time.Since(t0)
	wctx, cancel := context.WithTimeout(ctx, o.densityTimeout)
	defer cancel()
	if err := b.waitRunning(wctx, ids, 1); err != nil {
		return err
	}
	all := time.Since(t0)
	r.add("tenants", float64(o.densityTenants), "")
	r.add("POST /tenants p50", percentileMS(lat, 0.50), "ms")
	r.add("POST /tenants p99", percentileMS(lat, 0.99), "ms")
	r.add("all POSTs answered", posted.Seconds(), "s")
	r.atMost("all tenants consuming", all.Seconds(), "s", 120)

	rss1, err := rssMiB(pid)
	if err != nil {
		return err
	}
	r.atMost("consumer RSS", rss1, "MiB", 1024)
	r.add("consumer RSS per tenant", (rss1-rss0)*1024/float64(o.densityTenants), "KiB")
	// The management API refreshes node statistics every 5 s.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(11 * time.Second):
	}
	if node1, err := b.brokerNode(ctx); err == nil {
		n := float64(o.densityTenants)
		r.add("broker memory per tenant", float64(node1.MemUsed-node0.MemUsed)/1024/n, "KiB")
		r.add("broker memory", float64(node1.MemUsed)/(1<<20), "MiB")
	}
	if used1, limit, err := fileHandleCache(ctx); err == nil {
		r.add("broker file handles per tenant", float64(used1-used0)/float64(o.densityTenants), "")
		r.add("broker file handles used", float64(used1), fmt.Sprintf("of %d", limit))
	} else {
		r.note("broker file-handle cache not read (%v): run the bench on the broker's machine with rabbitmqctl", err)
	}

	// Postgres at this many partitions: a page query of one tenant and a group insert
	// of one row per tenant for 1,000 tenants, each EXPLAIN ANALYZEd (the insert rolled back).
	if err := b.explainDensity(ctx, r, ids); err != nil {
		return err
	}

	// The drain spread over every tenant, as in the drain scenario: consumer stopped,
	// everything published, consumer started and timed from its first row to its last.
	if err := b.svc.consumer.stop(ctx, o.serviceStopWait); err != nil {
		return fmt.Errorf("stop consumer: %w", err)
	}
	n := o.densityMessages
	if _, err := b.publish(ctx, n, 0, func(i int, sent int64) (string, amqp.Publishing) {
		return rabbit.QueueName(ids[i%len(ids)]), jsonMessage(body("density", i, sent, o.payloadBytes))
	}); err != nil {
		return err
	}
	started := time.Now()
	if err := b.svc.consumer.start(); err != nil {
		return err
	}
	dctx, dcancel := context.WithTimeout(ctx, o.drainTimeout)
	defer dcancel()
	st, err := waitStored(dctx, b.pool, ids, " AND payload->>'kind' = 'density'", 0, n, started)
	if err != nil {
		return fmt.Errorf("density drain: %w (consumer log: %s)", err, b.svc.consumer.logTail())
	}
	r.add("drain rate over all tenants", st.rate, "msg/s")
	r.add("drain wall time (from exec, pools included)", st.wall.Seconds(), "s")
	if b.drainRate > 0 {
		r.atLeast("ratio to the 10-tenant drain", st.rate/b.drainRate, "×", 0.5)
	} else {
		r.note("no drain scenario in this run: ratio to the 10-tenant drain not computed")
	}
	if err := b.svc.consumer.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	if rss, err := rssMiB(b.svc.consumer.pid()); err == nil {
		r.atMost("consumer RSS after the drain", rss, "MiB", 1024)
	}

	// Nothing wedged: a brand-new AMQP connection completes its handshake, and every
	// service is ready.
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	defer hcancel()
	conn, err := amqp.DialConfig(o.rabbitURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return fmt.Errorf("a new AMQP connection failed after %d tenants: %w", o.densityTenants, err)
	}
	_ = conn.Close()
	for _, port := range []int{o.commandPort, o.queryPort, o.consumerPort} {
		req, _ := http.NewRequestWithContext(hctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), nil)
		resp, err := b.http.Do(req)
		if err != nil {
			return fmt.Errorf("readyz on :%d: %w", port, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz on :%d answered %d after %d tenants", port, resp.StatusCode, o.densityTenants)
		}
	}
	r.add("new AMQP handshake and every /readyz after it", 1, "bool")
	r.note("%d tenants × 1 worker; consuming = tenant_workers reports the worker and the broker shows the consumer; per-tenant costs are (after − before) / tenants", o.densityTenants)
	return nil
}

// brokerNodeStats is what the management API reports for the broker node.
type brokerNodeStats struct {
	MemUsed int64 `json:"mem_used"`
	FDUsed  int64 `json:"fd_used"`
	FDTotal int64 `json:"fd_total"`
}

func (b *bench) brokerNode(ctx context.Context) (brokerNodeStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.opt.managementURL+"/api/nodes", nil)
	if err != nil {
		return brokerNodeStats{}, err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return brokerNodeStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return brokerNodeStats{}, fmt.Errorf("GET /api/nodes answered %d", resp.StatusCode)
	}
	var nodes []brokerNodeStats
	if err := json.NewDecoder(resp.Body).Decode(&nodes); err != nil {
		return brokerNodeStats{}, fmt.Errorf("decode /api/nodes: %w", err)
	}
	if len(nodes) == 0 {
		return brokerNodeStats{}, fmt.Errorf("no broker node listed")
	}
	return nodes[0], nil
}

// explainDensity times the planning and execution of a page query and of a group
// insert with the messages table split into one partition per tenant.
func (b *bench) explainDensity(ctx context.Context, r *Result, ids []string) error {
	var planMS, execMS float64
	explain := func(tx pgx.Tx, sql string, args ...any) error {
		var raw []byte
		if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
			return fmt.Errorf("explain: %w", err)
		}
		var plans []struct {
			Planning  float64 `json:"Planning Time"`
			Execution float64 `json:"Execution Time"`
		}
		if err := json.Unmarshal(raw, &plans); err != nil {
			return fmt.Errorf("decode explain: %w", err)
		}
		if len(plans) == 0 {
			return fmt.Errorf("explain returned no plan: %s", raw)
		}
		planMS, execMS = plans[0].Planning, plans[0].Execution
		return nil
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The query service's page query names the tenant's partition; each statement is
	// explained twice: the first run on this connection builds the relation cache.
	page := fmt.Sprintf(messages.FirstPageSQL, messages.PartitionIdent(ids[len(ids)/2]))
	for _, run := range []string{"cold", "warm"} {
		if err := explain(tx, page, ids[len(ids)/2], 101); err != nil {
			return err
		}
		r.add("page query planning ("+run+")", planMS, "ms")
		r.add("page query execution ("+run+")", execMS, "ms")
	}

	k := min(1000, len(ids))
	tenants, msgIDs, payloads, times := make([]string, k), make([]string, k), make([]string, k), make([]time.Time, k)
	now := time.Now()
	for i := range k {
		tenants[i], msgIDs[i], payloads[i], times[i] = ids[i*len(ids)/k], uuid.NewString(), `{"density":true}`, now
	}
	sort.Strings(tenants)
	for _, run := range []string{"cold", "warm"} {
		for i := range msgIDs {
			msgIDs[i] = uuid.NewString()
		}
		if err := explain(tx, `INSERT INTO messages (tenant_id, id, payload, created_at)
		SELECT t, i, p::jsonb, c FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) AS u(t, i, p, c)
		ON CONFLICT (tenant_id, id) DO NOTHING`, tenants, msgIDs, payloads, times); err != nil {
			return err
		}
		r.add(fmt.Sprintf("group insert of %d rows over %d partitions: planning (%s)", k, k, run), planMS, "ms")
		r.add(fmt.Sprintf("group insert of %d rows over %d partitions: execution (%s)", k, k, run), execMS, "ms")
	}
	return nil
}

// fileHandleCache reads the broker's file-handle cache (used, limit) with rabbitmqctl,
// which only works on the broker's machine: quorum queues hold their handles there,
// not in the process's open-file count the management API reports.
func fileHandleCache(ctx context.Context) (used, limit int64, err error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "rabbitmqctl", "eval", "file_handle_cache:info([total_limit,total_used]).").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("rabbitmqctl eval: %w", err)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "[{total_limit,%d},{total_used,%d}]", &limit, &used); err != nil {
		return 0, 0, fmt.Errorf("parse %q: %w", out, err)
	}
	return used, limit, nil
}

// quorumQueuesPerTenant follows QUEUE_TYPE and DLQ_QUEUE_TYPE as the services read them
// from the environment the bench passes on (defaults: quorum work queue, classic DLQ).
func quorumQueuesPerTenant() int {
	n := 0
	if os.Getenv("QUEUE_TYPE") != "classic" {
		n++
	}
	if os.Getenv("DLQ_QUEUE_TYPE") == "quorum" {
		n++
	}
	return n
}
