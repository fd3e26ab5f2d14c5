package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/projections/messages"
)

// query: one tenant filled with -query-rows rows (ten rows per timestamp, so pages
// cut through equal timestamps), walked to page -query-page with limit=100, then
// page 1 and that page each fetched -query-repeats times.
func (b *bench) query(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	id, err := b.createTenant(ctx, "bench-query-"+uuid.NewString()[:8], 1)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		ok, err := messages.PartitionExists(wctx, b.pool, id)
		if err != nil {
			return fmt.Errorf("wait for the partition: %w", err)
		}
		if ok {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("the consumer did not attach the partition of %s within 30s", id)
		case <-time.After(20 * time.Millisecond):
		}
	}

	fillStart := time.Now()
	const chunks = 2
	g, gctx := errgroup.WithContext(ctx)
	per := (o.queryRows + chunks - 1) / chunks
	for c := range chunks {
		lo, hi := c*per+1, min((c+1)*per, o.queryRows)
		g.Go(func() error {
			_, err := b.pool.Exec(gctx, `
				INSERT INTO messages (tenant_id, id, payload, created_at)
				SELECT $1::uuid, gen_random_uuid(),
				       jsonb_build_object('kind', 'query', 'seq', g, 'pad', repeat('x', 150)),
				       timestamptz '2024-01-01 00:00:00+00' + (g / 10) * interval '1 millisecond'
				FROM generate_series($2::int, $3::int) AS g`, id, lo, hi)
			if err != nil {
				return fmt.Errorf("fill rows %d..%d: %w", lo, hi, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// What autovacuum would have done to a table this size by the time anyone reads it.
	if _, err := b.pool.Exec(ctx, "VACUUM (ANALYZE) "+messages.PartitionIdent(id)); err != nil {
		return fmt.Errorf("vacuum partition: %w", err)
	}
	r.add("rows", float64(o.queryRows), "")
	r.add("fill + vacuum", time.Since(fillStart).Seconds(), "s")

	// The query side learns about the tenant from the event stream: wait for it.
	for {
		status, _, err := b.doJSON(wctx, http.MethodGet, b.queryURL("/tenants/"+id), nil, nil)
		if err != nil {
			return err
		}
		if status == http.StatusOK {
			break
		}
		select {
		case <-wctx.Done():
			return unavailable("GET /tenants/%s answered %d for 30s", id, status)
		case <-time.After(20 * time.Millisecond):
		}
	}

	page := func(cursor string) (next string, d time.Duration, ids []string, err error) {
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var out struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}
		t0 := time.Now()
		status, raw, err := b.doJSON(ctx, http.MethodGet, b.queryURL("/tenants/"+id+"/messages?"+q.Encode()), nil, &out)
		d = time.Since(t0)
		switch {
		case err != nil:
			return "", d, nil, err
		case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
			return "", d, nil, unavailable("GET /tenants/{id}/messages answered %d", status)
		case status != http.StatusOK:
			return "", d, nil, fmt.Errorf("GET /tenants/{id}/messages answered %d: %s", status, snippet(raw))
		case len(out.Data) != 100:
			return "", d, nil, fmt.Errorf("page of %d rows, want 100", len(out.Data))
		case out.NextCursor == nil:
			return "", d, nil, errors.New("next_cursor is null before the last page")
		}
		for _, m := range out.Data {
			ids = append(ids, m.ID)
		}
		return *out.NextCursor, d, ids, nil
	}

	walkStart := time.Now()
	seen := make(map[string]struct{}, o.queryPage*100)
	cursor, deep := "", ""
	for p := 1; p < o.queryPage; p++ {
		next, _, ids, err := page(cursor)
		if err != nil {
			return fmt.Errorf("walk, page %d: %w", p, err)
		}
		for _, id := range ids {
			if _, dup := seen[id]; dup {
				return fmt.Errorf("walk, page %d: row %s seen twice", p, id)
			}
			seen[id] = struct{}{}
		}
		cursor = next
	}
	deep = cursor
	r.add(fmt.Sprintf("walk to page %d", o.queryPage), time.Since(walkStart).Seconds(), "s")

	var first, last []time.Duration
	for range o.queryRepeats {
		_, d, _, err := page("")
		if err != nil {
			return fmt.Errorf("page 1: %w", err)
		}
		first = append(first, d)
		_, d, _, err = page(deep)
		if err != nil {
			return fmt.Errorf("page %d: %w", o.queryPage, err)
		}
		last = append(last, d)
	}
	r.add("page 1 p50", percentileMS(first, 0.5), "ms")
	r.atMost("page 1 p99", percentileMS(first, 0.99), "ms", 10)
	r.add(fmt.Sprintf("page %d p50", o.queryPage), percentileMS(last, 0.5), "ms")
	r.atMost(fmt.Sprintf("page %d p99", o.queryPage), percentileMS(last, 0.99), "ms", 10)
	r.note("limit=100, ~200-byte payloads, 10 rows per created_at; GETs alternate page 1 and the deep page over one keep-alive client; the walk saw no row twice")
	return nil
}

// replay: -replay-tenants tenants' events (created + one resize each) appended with
// the platform event store into a database of their own, then `query -replay` timed.
func (b *bench) replay(ctx context.Context, r *Result) error {
	o := b.opt
	path := filepath.Join(o.bin, "query")
	if _, err := os.Stat(path); err != nil {
		return unavailable("%s not found (run make build)", path)
	}
	dbURL := replayURL(o.databaseURL)
	if dbURL == o.databaseURL {
		return fmt.Errorf("cannot derive the replay database name from %s", o.databaseURL)
	}
	if err := recreateDatabase(ctx, dbURL); err != nil {
		return err
	}
	if !o.keepDB {
		defer func() {
			if err := dropDatabase(context.WithoutCancel(ctx), dbURL); err != nil {
				b.log.Warn("drop replay database", "err", err)
			}
		}()
	}
	pool, err := postgres.NewPool(ctx, dbURL, 8)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	db := postgres.OpenDB(pool)
	defer db.Close()
	store := eventstore.New(db, watermill.NopLogger{})

	appendStart := time.Now()
	const perBatch = 100
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for lo := 0; lo < o.replayTenants; lo += perBatch {
		hi := min(lo+perBatch, o.replayTenants)
		g.Go(func() error {
			envs := make([]events.Envelope, 0, 2*(hi-lo))
			for i := lo; i < hi; i++ {
				id := uuid.NewString()
				meta := func() events.Metadata {
					return events.Metadata{EventID: uuid.NewString(), OccurredAt: time.Now().UTC(), CorrelationID: "bench-replay"}
				}
				c, err := events.NewEnvelope(id, 1, meta(), events.TenantCreated{Name: fmt.Sprintf("bench-replay-%d", i), Workers: 1})
				if err != nil {
					return err
				}
				u, err := events.NewEnvelope(id, 2, meta(), events.TenantConcurrencyChanged{Workers: 2, PreviousWorkers: 1})
				if err != nil {
					return err
				}
				envs = append(envs, c, u)
			}
			if _, err := store.Append(gctx, envs, nil); err != nil {
				return fmt.Errorf("append events: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	nEvents := 2 * o.replayTenants
	r.add("events", float64(nEvents), "")
	r.add("append (setup)", time.Since(appendStart).Seconds(), "s")

	env := make([]string, 0, len(b.svc.query.env))
	for _, kv := range b.svc.query.env {
		if k, _, _ := strings.Cut(kv, "="); k != "DATABASE_URL" && k != "HTTP_ADDR" {
			env = append(env, kv)
		}
	}
	env = append(env, "DATABASE_URL="+dbURL, fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", o.queryPort+10))
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, path, "-replay")
	cmd.Env = env
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(t0)
	if err != nil {
		if strings.Contains(string(out), "flag provided but not defined") {
			return unavailable("bin/query has no -replay flag yet")
		}
		return fmt.Errorf("query -replay: %w: %s", err, snippet(out))
	}
	var tenants, resized int
	err = pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE workers_desired = 2 AND version = 2) FROM tenants").Scan(&tenants, &resized)
	if err != nil {
		return fmt.Errorf("check the rebuilt tenants: %w", err)
	}
	if tenants != o.replayTenants || resized != o.replayTenants {
		return fmt.Errorf("after replay the tenants read model holds %d tenants, %d at version 2 with 2 workers; want %d", tenants, resized, o.replayTenants)
	}
	r.add("replay wall time (process)", elapsed.Seconds(), "s")
	r.add("replay rate", float64(nEvents)/elapsed.Seconds(), "events/s")
	r.note("timed from exec to exit of `query -replay` (startup included) on its own database; the rebuilt tenants table was checked")
	return nil
}

// scale: -scale-tenants tenants with one worker each created through the command
// service (8 requests in flight), timed until the consumer runs them all, then its RSS.
func (b *bench) scale(ctx context.Context, r *Result) error {
	o := b.opt
	if err := b.needServices(ctx); err != nil {
		return err
	}
	pid := b.svc.consumer.pid()
	if idle, err := rssMiB(pid); err == nil {
		r.add("consumer RSS before", idle, "MiB")
	}
	t0 := time.Now()
	ids, err := b.createTenants(ctx, "bench-scale-"+uuid.NewString()[:8], o.scaleTenants, 1, 8)
	if err != nil {
		return err
	}
	posted := time.Since(t0)
	wctx, cancel := context.WithTimeout(ctx, o.scaleTimeout)
	defer cancel()
	if err := b.waitRunning(wctx, ids, 1); err != nil {
		return err
	}
	all := time.Since(t0)
	rss, err := rssMiB(pid)
	if err != nil {
		return err
	}
	r.add("tenants", float64(o.scaleTenants), "")
	r.add("all POSTs answered", posted.Seconds(), "s")
	r.atMost("all tenants consuming", all.Seconds(), "s", 30)
	r.atMost("consumer RSS", rss, "MiB", 500)
	r.note("consuming = tenant_workers reports 1 worker for every tenant and every queue shows a consumer on the broker")
	return nil
}
