package main

import (
	"encoding/json"
	"testing"
	"time"
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
