package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
)

// needServices starts the three services if they are not running, or explains why
// the scenario cannot run.
func (b *bench) needServices(ctx context.Context) error {
	if b.servicesNote != "" {
		return unavailable("%s", b.servicesNote)
	}
	if err := b.svc.ensure(ctx); err != nil {
		var u *unavailableError
		if errors.As(err, &u) {
			b.servicesNote = u.reason
		}
		return err
	}
	return nil
}

func (b *bench) commandURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", b.opt.commandPort, path)
}

func (b *bench) queryURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", b.opt.queryPort, path)
}

// createTenant is POST /tenants (README "Command service"); workers 0 leaves the service default.
// The tenant's queues are tracked for cleanup as soon as its id is known.
func (b *bench) createTenant(ctx context.Context, name string, workers int) (string, error) {
	req := map[string]any{"name": name}
	if workers > 0 {
		req["workers"] = workers
	}
	var out struct {
		ID string `json:"id"`
	}
	status, raw, err := b.doJSON(ctx, http.MethodPost, b.commandURL("/tenants"), req, &out)
	if err != nil {
		return "", err
	}
	switch {
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return "", unavailable("POST /tenants answered %d: not implemented yet", status)
	case status != http.StatusCreated:
		return "", fmt.Errorf("POST /tenants answered %d: %s", status, snippet(raw))
	case out.ID == "":
		return "", fmt.Errorf("POST /tenants answered 201 without an id: %s", snippet(raw))
	}
	if err := b.trackTenants(ctx, out.ID); err != nil {
		return "", err
	}
	return out.ID, nil
}

// doJSON sends body (if not nil) as JSON and decodes a 2xx answer into out.
func (b *bench) doJSON(ctx context.Context, method, url string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read %s %s: %w", method, url, err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode %s %s answer: %w", method, url, err)
		}
	}
	return resp.StatusCode, raw, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// createTenants creates n tenants named prefix-i with bounded concurrency, keeping
// their order. The command service validates against each stream, so parallel
// creates of distinct tenants do not conflict.
func (b *bench) createTenants(ctx context.Context, prefix string, n, workers, par int) ([]string, error) {
	ids := make([]string, n)
	errs := make(chan error, par)
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range par {
		go func() {
			for i := range next {
				id, err := b.createTenant(ctx, fmt.Sprintf("%s-%d", prefix, i), workers)
				if err != nil {
					errs <- err
					// Drain the feeder so it can exit; the other workers stop too.
					for range next {
					}
					return
				}
				ids[i] = id
			}
			errs <- nil
		}()
	}
	var first error
	for range par {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return ids, first
}

// waitRunning waits until the consumer runs `workers` workers for every tenant: first
// as the consumer reports it (tenant_workers, what GET /tenants/{id} shows as
// workers.current), then confirmed on the broker (each queue's consumer count).
func (b *bench) waitRunning(ctx context.Context, tenants []string, workers int) error {
	want := len(tenants) * workers
	for {
		var sum int
		err := b.pool.QueryRow(ctx,
			"SELECT coalesce(sum(least(current, $2)), 0) FROM tenant_workers WHERE tenant_id = ANY($1::uuid[])",
			tenants, workers).Scan(&sum)
		if err != nil {
			return fmt.Errorf("read tenant_workers: %w", err)
		}
		if sum >= want {
			ok, err := b.queueConsumers(atLeast, tenants, workers)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer reports %d of %d workers: %w", sum, want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Consumer-count checks for queueConsumers.
func atLeast(got, want int) bool { return got >= want }
func exactly(got, want int) bool { return got == want }

// queueConsumers reports whether every tenant's queue has a consumer count the broker
// reports that ok accepts for workers.
func (b *bench) queueConsumers(ok func(got, want int) bool, tenants []string, workers int) (bool, error) {
	ch, err := b.amqp[1].Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	for _, t := range tenants {
		q, err := ch.QueueDeclarePassive(rabbit.QueueName(t), true, false, false, false, nil)
		if err != nil {
			return false, fmt.Errorf("inspect queue of %s: %w", t, err)
		}
		if !ok(q.Consumers, workers) {
			return false, nil
		}
	}
	return true, nil
}

// publishOne publishes one message and waits for its confirm.
func publishOne(ctx context.Context, ch *amqp.Channel, queue string, msg amqp.Publishing) error {
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, msg)
	if err != nil {
		return fmt.Errorf("publish to %s: %w", queue, err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("confirm of %s: %w", queue, err)
	}
	if !ok {
		return fmt.Errorf("broker nacked publish to %s", queue)
	}
	return nil
}

// waitRow polls for one stored message by primary key until it is visible, i.e.
// committed. A primary key lookup is cheap enough to poll every millisecond or two.
func (b *bench) waitRow(ctx context.Context, tenant, id string, every time.Duration) error {
	for {
		var found bool
		err := b.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM messages WHERE tenant_id = $1 AND id = $2)", tenant, id).Scan(&found)
		if err != nil {
			return fmt.Errorf("look up message %s: %w", id, err)
		}
		if found {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("message %s of %s not stored: %w", id, tenant, ctx.Err())
		case <-time.After(every):
		}
	}
}

// addConsumerMetrics adds what the consumer's own /metrics says about the run so far
// (the drain starts a fresh process, so its counters cover the drain): mean rows per
// group commit and mean time from delivery to settle. Best effort: series that are not
// there are skipped.
func (b *bench) addConsumerMetrics(ctx context.Context, r *Result) {
	_, raw, err := b.doJSON(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", b.opt.consumerPort), nil, nil)
	if err != nil {
		return
	}
	if sum, n := promSum(raw, "store_batch_rows_sum", ""), promSum(raw, "store_batch_rows_count", ""); n > 0 {
		r.add("consumer: mean rows per commit", sum/n, "rows")
	}
	if sum, n := promSum(raw, "message_processing_seconds_sum", ""), promSum(raw, "message_processing_seconds_count", ""); n > 0 {
		r.add("consumer: mean delivery → settle", 1000*sum/n, "ms")
	}
	// Deliveries handled more than once (requeued, then redelivered) cost the broker
	// and the consumer twice.
	for _, outcome := range []string{"stored", "duplicate", "requeued", "dead_lettered", "abandoned"} {
		if v := promSum(raw, "messages_processed_total", `outcome="`+outcome+`"`); v > 0 {
			r.add("consumer: deliveries "+outcome, v, "msgs")
		}
	}
}

// promSum adds up every series in a Prometheus text exposition whose metric name ends
// with suffix, whatever its labels; a non-empty label (`outcome="stored"`) keeps only
// the series carrying it.
func promSum(text []byte, suffix, label string) float64 {
	var total float64
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name, rest = line[:i], line[strings.LastIndexByte(line, '}')+1:]
		}
		if !strings.HasSuffix(name, suffix) || (label != "" && !strings.Contains(line[len(name):len(line)-len(rest)], label)) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			total += v
		}
	}
	return total
}

// promLabelValues returns the values of label on the series of metric (exact name)
// whose value is above zero, e.g. the tenants a consumer runs workers for.
func promLabelValues(text []byte, metric, label string) []string {
	var out []string
	prefix := metric + "{"
	for _, line := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err != nil || v <= 0 {
			continue
		}
		_, rest, ok := strings.Cut(line[len(prefix):end], label+`="`)
		if !ok {
			continue
		}
		if value, _, ok := strings.Cut(rest, `"`); ok {
			out = append(out, value)
		}
	}
	return out
}
