package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/multitenant/mtm/platform/rendezvous"
)

func TestBodyIsJSONOfTheRequestedSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100, 200, 1000} {
		b := body("drain", 12345, time.Now().UnixNano(), size)
		var v struct {
			Kind   string `json:"kind"`
			Seq    int    `json:"seq"`
			SentNS int64  `json:"sent_ns"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("size %d: not JSON: %v: %s", size, err, b)
		}
		if len(b) != size || v.Kind != "drain" || v.Seq != 12345 || v.SentNS == 0 {
			t.Fatalf("size %d: got %d bytes, %+v", size, len(b), v)
		}
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	cases := map[float64]float64{0.5: 50, 0.95: 95, 0.99: 99, 1: 100}
	for p, want := range cases {
		if got := percentileMS(d, p); got != want {
			t.Errorf("p%.2f = %v ms, want %v", p, got, want)
		}
	}
}

func TestReplayDatabaseIsDerivedFromTheBenchDatabase(t *testing.T) {
	t.Parallel()
	got := replayURL("postgres://postgres@127.0.0.1:5432/mtm_bench?sslmode=disable")
	if want := "postgres://postgres@127.0.0.1:5432/mtm_bench_replay?sslmode=disable"; got != want {
		t.Fatalf("replayURL = %s, want %s", got, want)
	}
}

func TestResultTargets(t *testing.T) {
	t.Parallel()
	var r Result
	r.atMost("p99", 12, "ms", 10)
	r.atLeast("ratio", 0.9, "×", 0.8)
	if *r.Metrics[0].Met || !*r.Metrics[1].Met {
		t.Fatalf("targets judged wrong: %+v %+v", r.Metrics[0], r.Metrics[1])
	}
	if r.Metrics[0].Target != "≤ 10" || r.Metrics[1].Target != "≥ 0.800" {
		t.Fatalf("targets rendered as %q and %q", r.Metrics[0].Target, r.Metrics[1].Target)
	}
}

func TestPromSumAddsSeriesWhateverTheirLabels(t *testing.T) {
	t.Parallel()
	text := []byte(`# HELP consumer_store_batch_rows Rows per group-commit transaction.
consumer_store_batch_rows_sum 150
consumer_store_batch_rows_count 3
consumer_message_processing_seconds_sum{tenant="a b}"} 0.5
consumer_message_processing_seconds_sum{tenant="c"} 1.5 1700000000
other_store_batch_rows_total 9
`)
	if got := promSum(text, "store_batch_rows_sum", ""); got != 150 {
		t.Errorf("batch rows sum = %v, want 150", got)
	}
	if got := promSum(text, "message_processing_seconds_sum", ""); got != 2 {
		t.Errorf("processing seconds sum = %v, want 2", got)
	}
	if got := promSum(text, "message_processing_seconds_sum", `tenant="c"`); got != 1.5 {
		t.Errorf("processing seconds of tenant c = %v, want 1.5", got)
	}
}

// The replicas scenario runs in all after drain (whose tenants it reuses) and before
// scale and density (whose thousands of tenants its fresh consumer processes would set
// up first), and runScenario dispatches it (with the services down it is unavailable,
// not an empty "ok").
func TestReplicasScenarioIsOrderedAndDispatched(t *testing.T) {
	t.Parallel()
	at := slices.Index(allScenarios, "replicas")
	if at < 0 || at < slices.Index(allScenarios, "drain") || at > slices.Index(allScenarios, "scale") || at > slices.Index(allScenarios, "density") {
		t.Fatalf("replicas misplaced in %v", allScenarios)
	}
	b := &bench{servicesNote: "services down"}
	if r := b.runScenario(context.Background(), "replicas"); r.Status != statusUnavailable || r.Reason != "services down" {
		t.Fatalf("replicas without services: %+v", r)
	}
}

// Every consumer process has a port and a log of its own: the consumer's, then
// consumer-port + 100, + 200, … for consumer-2, consumer-3.
func TestConsumerReplicasHaveTheirOwnPortsAndLogs(t *testing.T) {
	t.Parallel()
	o := options{bin: "bin", logDir: t.TempDir(), commandPort: 28080, queryPort: 28081, consumerPort: 28082}
	s := newServices(o, slog.New(slog.DiscardHandler))
	procs := s.consumers(3)
	if len(procs) != 3 || procs[0] != s.consumer {
		t.Fatalf("consumers(3) = %d processes, first is the consumer: %v", len(procs), procs[0] == s.consumer)
	}
	ports, logs := map[int]bool{o.commandPort: true, o.queryPort: true}, map[string]bool{}
	for i, sv := range procs {
		if want := 28082 + 100*i; sv.port != want {
			t.Errorf("%s on port %d, want %d", sv.name, sv.port, want)
		}
		if ports[sv.port] || logs[sv.logPath] {
			t.Errorf("%s shares port %d or log %s", sv.name, sv.port, sv.logPath)
		}
		ports[sv.port], logs[sv.logPath] = true, true
		if filepath.Base(sv.path) != "consumer" || !slices.Contains(sv.env, fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", sv.port)) {
			t.Errorf("%s runs %s with %v", sv.name, sv.path, sv.env)
		}
	}
	if again := s.consumers(2); again[1] != procs[1] || len(s.replicas) != 2 {
		t.Fatalf("consumers(2) after consumers(3) made new processes")
	}
	if got := replicaPorts(28082, 3); got != "28082, 28182, 28282" {
		t.Fatalf("replicaPorts = %q", got)
	}
}

func TestOwnershipState(t *testing.T) {
	t.Parallel()
	live := []string{"r1", "r2", "r3"}
	tenants := []string{"00000000-0000-0000-0000-000000000001", "0b8f2a4e-7c1d-4e2f-9a3b-5c6d7e8f9a0b", "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"}
	settledRows := func() []tenantWorkers {
		rows := make([]tenantWorkers, len(tenants))
		for i, id := range tenants {
			o := rendezvous.Owner(live, id)
			rows[i] = tenantWorkers{Tenant: id, Current: 3, Owner: o, Replicas: []string{o}}
		}
		return rows
	}
	other := func(owner string) string {
		for _, r := range live {
			if r != owner {
				return r
			}
		}
		return ""
	}
	cases := []struct {
		name               string
		edit               func([]tenantWorkers) []tenantWorkers
		live               []string
		consuming, settled bool
	}{
		{"settled", func(r []tenantWorkers) []tenantWorkers { return r }, live, true, true},
		{"a replica not live yet", func(r []tenantWorkers) []tenantWorkers { return r }, live[:2], true, false},
		{"a tenant short of workers", func(r []tenantWorkers) []tenantWorkers { r[1].Current = 2; return r }, live, false, false},
		{"a tenant with no row", func(r []tenantWorkers) []tenantWorkers { r[2] = tenantWorkers{Tenant: tenants[2]}; return r }, live, false, false},
		{"hand-over overlap", func(r []tenantWorkers) []tenantWorkers {
			r[0].Current, r[0].Replicas = 6, []string{r[0].Owner, other(r[0].Owner)}
			return r
		}, live, true, false},
		{"owned by the wrong replica", func(r []tenantWorkers) []tenantWorkers {
			r[0].Owner = other(r[0].Owner)
			r[0].Replicas = []string{r[0].Owner}
			return r
		}, live, true, false},
	}
	for _, c := range cases {
		consuming, settled := ownershipState(c.edit(settledRows()), c.live, 3, 3)
		if consuming != c.consuming || settled != c.settled {
			t.Errorf("%s: consuming %v settled %v, want %v %v", c.name, consuming, settled, c.consuming, c.settled)
		}
	}
}

// The owner split counts tenant_workers.owner and names each owner by the process
// running its tenants.
func TestOwnerSplit(t *testing.T) {
	t.Parallel()
	owners := map[string]string{"t1": "vm-a", "t2": "vm-a", "t3": "vm-a", "t4": "vm-b", "t5": "vm-b", "t6": "vm-c", "t7": ""}
	running := map[string][]string{"consumer": {"t4", "t5"}, "consumer-2": {"t1", "t2", "t3"}, "consumer-3": {"t6"}}
	split := ownerSplit(owners, running)
	want := []ownerShare{{"vm-a", "consumer-2", 3}, {"vm-b", "consumer", 2}, {"", "", 1}, {"vm-c", "consumer-3", 1}}
	if !slices.Equal(split, want) {
		t.Fatalf("ownerSplit = %+v, want %+v", split, want)
	}
	if got, want := formatSplit(split), "3/2/1/1 (consumer-2 (vm-a) 3, consumer (vm-b) 2, (none) 1, consumer-3 (vm-c) 1)"; got != want {
		t.Fatalf("formatSplit = %q, want %q", got, want)
	}
}

func TestPromLabelValuesKeepsSeriesAboveZero(t *testing.T) {
	t.Parallel()
	text := []byte(`# HELP tenant_workers_current Workers (AMQP consumers) running per tenant.
tenant_workers_current{tenant_id="a"} 3
tenant_workers_current{tenant_id="b"} 0
tenant_workers_current_other{tenant_id="c"} 3
tenant_workers_current{tenant_id="d"} 1 1700000000
`)
	if got := promLabelValues(text, "tenant_workers_current", "tenant_id"); !slices.Equal(got, []string{"a", "d"}) {
		t.Fatalf("promLabelValues = %v, want [a d]", got)
	}
}

// Cleaning up a tenant's work queue also deletes the tenant's exchange; a DLQ or a
// queue not named like a tenant's work queue has none.
func TestTenantExchangeGoesWithTheWorkQueue(t *testing.T) {
	t.Parallel()
	const id = "01a235d9-9d32-772c-bff0-a430072d2d62"
	if ex, ok := tenantExchange("tenant_" + id + "_queue"); !ok || ex != "tenant_"+id+"_queue" {
		t.Fatalf("work queue: exchange %q, %v", ex, ok)
	}
	for _, q := range []string{"tenant_" + id + "_dlq", "bench-baseline-1", "zzprobe_x"} {
		if ex, ok := tenantExchange(q); ok {
			t.Errorf("%s: exchange %q", q, ex)
		}
	}
}
