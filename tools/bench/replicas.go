package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rendezvous"
)

// replicas: the drain workload (-tenants × -workers, -replicas-messages) drained once
// by one consumer process and once by -replica-count processes sharing the tenants
// (README "Scaling"). Each time every consumer is stopped, the backlog published, the
// processes started together and timed until every message is stored exactly once;
// alongside, until every tenant reports its workers and until ownership settles (each
// tenant on the replica rendezvous hashing picks, and on no other). Then the extra
// replicas are stopped and the tenants timed back onto the one left running.
func (b *bench) replicas(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	tenants, err := b.workloadTenants(ctx)
	if err != nil {
		return err
	}
	// Whatever happens, the scenarios after this one run with the consumer alone (a
	// stopped consumer is started again by the next scenario's needServices).
	defer func() {
		sctx := context.WithoutCancel(ctx)
		if err := stopServices(sctx, b.svc.replicas, o.serviceStopWait); err != nil {
			b.log.Warn("stop the extra consumer replicas", "err", err)
		}
	}()
	var rates []float64
	for _, k := range []int{1, o.replicaCount} {
		rate, err := b.replicaDrain(ctx, r, tenants, k)
		if err != nil {
			return err
		}
		rates = append(rates, rate)
	}
	r.add(fmt.Sprintf("drain rate, %d replicas ÷ 1", o.replicaCount), rates[1]/rates[0], "×")

	// Scale back in: SIGTERM the extra replicas (each leaves the membership, handing
	// its tenants over), time until the consumer runs them all alone again.
	procs := b.svc.consumers(o.replicaCount)
	stopped := time.Now()
	if err := stopServices(ctx, procs[1:], o.serviceStopWait); err != nil {
		return fmt.Errorf("stop the extra consumer replicas: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, o.drainTimeout)
	defer cancel()
	st, err := b.watchOwnership(wctx, tenants, procs[:1], stopped)
	if err != nil {
		return fmt.Errorf("scale in to 1 replica: %w", err)
	}
	r.add(fmt.Sprintf("scale in %d → 1: SIGTERM → tenants settled on 1", o.replicaCount), st.settled.Seconds(), "s")

	r.note("%d tenants × %d workers, %d messages per drain; each drain: every consumer stopped, the backlog published, then 1 (resp. %d) consumer processes started together (ports %s) and timed from exec; rate = rows / (last row − first row)",
		o.tenants, o.workers, o.replicasMessages, o.replicaCount, replicaPorts(o.consumerPort, o.replicaCount))
	r.note("consuming = every tenant's tenant_workers.current ≥ its workers; settled = every tenant runs exactly its workers on the owner rendezvous hashing picks over the live replicas (tenant_workers.owner, .replicas) and the broker counts exactly that many consumers per queue; cpu figures sum the consumer processes")
	if cpus := runtime.NumCPU(); cpus <= 4 {
		r.note("on %d cores, %d replicas show the overhead of more processes and connections, not a speed-up: the broker, Postgres and every consumer process share the same cores, and one consumer already keeps them busy; replicas add throughput where each runs on cores (or hosts) of its own", cpus, o.replicaCount)
	} else {
		r.note("the %d replicas share this machine's %d cores with the broker and Postgres: a speed-up here is bounded by those cores, not by the consumer", o.replicaCount, cpus)
	}
	return nil
}

// replicaDrain runs one drain with k consumer processes and adds its figures, named
// "k replica(s): …"; it returns the drain rate.
func (b *bench) replicaDrain(ctx context.Context, r *Result, tenants []string, k int) (float64, error) {
	o := b.opt
	label := fmt.Sprintf("%d replicas: ", k)
	if k == 1 {
		label = "1 replica: "
	}
	procs := b.svc.consumers(k)
	if err := stopServices(ctx, append([]*service{b.svc.consumer}, b.svc.replicas...), o.serviceStopWait); err != nil {
		return 0, fmt.Errorf("stop the consumers: %w", err)
	}
	// A replica that stopped cleanly left the membership. A row left behind (one was
	// killed) would count as live for REPLICA_TTL and keep its tenants idle that long.
	var left int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM consumer_replicas").Scan(&left); err != nil {
		return 0, fmt.Errorf("read consumer_replicas: %w", err)
	}
	if left > 0 {
		return 0, fmt.Errorf("%d consumer replica rows remain after every consumer stopped (one was killed?): the next start would wait REPLICA_TTL for them", left)
	}
	before, err := b.countRows(ctx, tenants)
	if err != nil {
		return 0, err
	}
	n := o.replicasMessages
	if _, err := b.publish(ctx, n, 0, func(i int, sent int64) (string, amqp.Publishing) {
		return rabbit.QueueName(tenants[i%len(tenants)]), jsonMessage(body("replicas", i, sent, o.payloadBytes))
	}); err != nil {
		return 0, err
	}

	started := time.Now()
	cpu0 := takeCPU(0) // the new processes start from zero
	for _, sv := range procs {
		if err := sv.start(); err != nil {
			return 0, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, o.drainTimeout)
	defer cancel()
	owned := make(chan ownershipTimes, 1)
	watchErr := make(chan error, 1)
	go func() {
		st, err := b.watchOwnership(wctx, tenants, procs, started)
		owned <- st
		watchErr <- err
	}()
	st, err := waitStored(wctx, b.pool, tenants, "", before, before+n, started)
	if err != nil {
		return 0, fmt.Errorf("%sdrain: %w (consumer logs: %s)", label, err, logTails(procs))
	}
	cpu1 := takeCPU(0)
	for _, sv := range procs {
		cpu1.consumer += procTicks(sv.pid())
	}
	queues := make([]string, len(tenants))
	for i, t := range tenants {
		queues[i] = rabbit.QueueName(t)
	}
	if err := b.verifyExactlyOnce(ctx, tenants, "", before+n, queues); err != nil {
		return 0, fmt.Errorf("%s%w", label, err)
	}
	ot := <-owned
	if err := <-watchErr; err != nil {
		return 0, fmt.Errorf("%sownership: %w (consumer logs: %s)", label, err, logTails(procs))
	}

	r.add(label+"drain rate", st.rate, "msg/s")
	r.add(label+"drain wall time (from exec)", st.wall.Seconds(), "s")
	r.add(label+"first row after exec", st.firstAfter.Seconds(), "s")
	r.add(label+"all tenants consuming after exec", ot.consuming.Seconds(), "s")
	r.add(label+"ownership settled after exec", ot.settled.Seconds(), "s")
	r.add(label+"exactly once", 1, "bool")

	// Each process's own counters (the processes started with the drain, so they
	// cover it): the tenants it runs, what it stored (a hand-over drops the tenant's
	// series) and what it handed over while ownership settled.
	var stored []string
	var handedOver, duplicates, rss, batchRows, batches float64
	running := map[string][]string{}
	for _, sv := range procs {
		_, raw, err := b.doJSON(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", sv.port), nil, nil)
		if err != nil {
			return 0, fmt.Errorf("metrics of %s: %w", sv.name, err)
		}
		running[sv.name] = promLabelValues(raw, "tenant_workers_current", "tenant_id")
		stored = append(stored, fmt.Sprintf("%s %s", sv.name, num(promSum(raw, "messages_processed_total", `outcome="stored"`))))
		duplicates += promSum(raw, "messages_processed_total", `outcome="duplicate"`)
		batchRows += promSum(raw, "store_batch_rows_sum", "")
		batches += promSum(raw, "store_batch_rows_count", "")
		handedOver += promSum(raw, "consumer_tenants_handed_over_total", "")
		if m, err := rssMiB(sv.pid()); err == nil {
			rss += m
		}
	}

	// The split by tenant_workers.owner, each owner named by the process that runs
	// its tenants, largest share first.
	rows, err := b.pool.Query(ctx, `SELECT t.id::text, COALESCE(w.owner, '')
		FROM unnest($1::uuid[]) AS t(id) LEFT JOIN tenant_workers w ON w.tenant_id = t.id`, tenants)
	if err != nil {
		return 0, fmt.Errorf("read tenant owners: %w", err)
	}
	owners := map[string]string{}
	var tenant, owner string
	if _, err := pgx.ForEachRow(rows, []any{&tenant, &owner}, func() error {
		owners[tenant] = owner
		return nil
	}); err != nil {
		return 0, fmt.Errorf("read tenant owners: %w", err)
	}
	split := ownerSplit(owners, running)
	for _, s := range split {
		r.add(fmt.Sprintf("%stenants owned by %s", label, s.name()), float64(s.Tenants), "tenants")
	}
	if k > 1 {
		r.add(label+"tenants handed over while settling", handedOver, "tenants")
		r.note("%d replicas: tenant split (tenant_workers.owner) %s; rows stored per process (its /metrics): %s", k, formatSplit(split), strings.Join(stored, ", "))
	}
	if batches > 0 {
		// Each process group-commits only its own tenants' rows: more processes,
		// smaller commits, more transactions for Postgres.
		r.add(label+"mean rows per commit", batchRows/batches, "rows")
	}
	r.add(label+"deliveries already stored (duplicates)", duplicates, "msgs")
	r.add(label+"consumer RSS (all processes)", rss, "MiB")
	var cpu Result
	cpu.addCPU(cpu0, cpu1, n)
	for _, m := range cpu.Metrics {
		m.Name = label + m.Name
		r.Metrics = append(r.Metrics, m)
	}
	return st.rate, nil
}

// ownerShare is one replica's share of the tenants.
type ownerShare struct {
	Owner   string // tenant_workers.owner ("" for tenants without one)
	Process string // the harness's name of the process running its tenants, if known
	Tenants int
}

func (s ownerShare) name() string {
	owner := s.Owner
	if owner == "" {
		owner = "(none)"
	}
	if s.Process == "" {
		return owner
	}
	return s.Process + " (" + owner + ")"
}

// ownerSplit counts the tenants of each owner (owners: tenant → owner), largest share
// first, and names each owner by the process whose running tenants (running: process
// → tenant ids) include one of its tenants.
func ownerSplit(owners map[string]string, running map[string][]string) []ownerShare {
	count := map[string]int{}
	for _, o := range owners {
		count[o]++
	}
	process := map[string]string{}
	for name, ids := range running {
		for _, id := range ids {
			if o, ok := owners[id]; ok && o != "" {
				process[o] = name
			}
		}
	}
	split := make([]ownerShare, 0, len(count))
	for o, n := range count {
		split = append(split, ownerShare{Owner: o, Process: process[o], Tenants: n})
	}
	slices.SortFunc(split, func(a, b ownerShare) int {
		if a.Tenants != b.Tenants {
			return b.Tenants - a.Tenants
		}
		return strings.Compare(a.name(), b.name())
	})
	return split
}

// formatSplit renders the split as "4/3/3 (consumer-2 (vm-1a2b3c4d) 4, …)".
func formatSplit(split []ownerShare) string {
	counts := make([]string, len(split))
	named := make([]string, len(split))
	for i, s := range split {
		counts[i] = fmt.Sprint(s.Tenants)
		named[i] = fmt.Sprintf("%s %d", s.name(), s.Tenants)
	}
	return strings.Join(counts, "/") + " (" + strings.Join(named, ", ") + ")"
}

func replicaPorts(consumerPort, n int) string {
	ports := make([]string, n)
	for i := range n {
		ports[i] = fmt.Sprint(replicaPort(consumerPort, i+1))
	}
	return strings.Join(ports, ", ")
}

func logTails(svs []*service) string {
	var b strings.Builder
	for _, sv := range svs {
		fmt.Fprintf(&b, "[%s: %s] ", sv.name, sv.logTail())
	}
	return strings.TrimSpace(b.String())
}

// ownershipTimes are when, after start, the tenants were all consuming and settled.
type ownershipTimes struct{ consuming, settled time.Duration }

// tenantWorkers is one tenant's tenant_workers row (zero values when it has none).
type tenantWorkers struct {
	Tenant   string
	Current  int
	Owner    string
	Replicas []string
}

// watchOwnership polls tenant_workers and consumer_replicas every 50 ms until the
// tenants are settled on procs (the consumer processes that should be running them),
// and returns when (after start) every tenant first reported its workers and when
// they settled. A process of procs that exits fails it at once.
func (b *bench) watchOwnership(ctx context.Context, tenants []string, procs []*service, start time.Time) (ownershipTimes, error) {
	var ot ownershipTimes
	workers := b.opt.workers
	for {
		for _, sv := range procs {
			if !sv.running() {
				return ot, fmt.Errorf("%s exited: %s", sv.name, sv.logTail())
			}
		}
		rows, err := b.pool.Query(ctx, `
			SELECT t.id::text, COALESCE(w.current, 0), COALESCE(w.owner, ''), COALESCE(w.replicas, '{}')
			FROM unnest($1::uuid[]) AS t(id) LEFT JOIN tenant_workers w ON w.tenant_id = t.id`, tenants)
		if err != nil {
			return ot, fmt.Errorf("read tenant_workers: %w", err)
		}
		tw, err := pgx.CollectRows(rows, pgx.RowToStructByPos[tenantWorkers])
		if err != nil {
			return ot, fmt.Errorf("read tenant_workers: %w", err)
		}
		rows, err = b.pool.Query(ctx, "SELECT replica_id FROM consumer_replicas")
		if err != nil {
			return ot, fmt.Errorf("read consumer_replicas: %w", err)
		}
		live, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return ot, fmt.Errorf("read consumer_replicas: %w", err)
		}
		now := time.Since(start)
		consuming, settled := ownershipState(tw, live, len(procs), workers)
		if consuming && ot.consuming == 0 {
			ot.consuming = now
		}
		if settled {
			// The broker agrees: exactly `workers` consumers on every queue, so no
			// replica that handed a tenant over still consumes from it.
			exact, err := b.queueConsumers(exactly, tenants, workers)
			if err != nil {
				return ot, err
			}
			if exact {
				if ot.consuming == 0 {
					ot.consuming = now
				}
				ot.settled = now
				return ot, nil
			}
		}
		select {
		case <-ctx.Done():
			return ot, fmt.Errorf("tenants not settled on %d replicas (live: %v; consuming: %v): %w", len(procs), live, consuming, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ownershipState judges one poll. consuming: every tenant reports at least workers
// consumers (what waitRunning waits for). settled: moreover exactly `replicas` replicas
// are live, and every tenant runs exactly workers consumers, all on its owner, the
// replica rendezvous hashing picks for it over the live ones.
func ownershipState(rows []tenantWorkers, live []string, replicas, workers int) (consuming, settled bool) {
	consuming, settled = true, len(live) == replicas
	for _, w := range rows {
		if w.Current < workers {
			consuming, settled = false, false
			break
		}
		if w.Current != workers || w.Owner != rendezvous.Owner(live, w.Tenant) || !slices.Equal(w.Replicas, []string{w.Owner}) {
			settled = false
		}
	}
	return consuming, settled
}
