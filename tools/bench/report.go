package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

const (
	statusOK          = "ok"
	statusFailed      = "failed"
	statusUnavailable = "unavailable"
)

// Report is the whole run, as written to -out.
type Report struct {
	StartedAt time.Time      `json:"started_at"`
	Seconds   float64        `json:"seconds"`
	Machine   Machine        `json:"machine"`
	Options   map[string]any `json:"options"`
	Results   []Result       `json:"results"`
}

// Result is one scenario's outcome.
type Result struct {
	Scenario string   `json:"scenario"`
	Status   string   `json:"status"`
	Reason   string   `json:"reason,omitempty"`
	Seconds  float64  `json:"seconds"`
	Metrics  []Metric `json:"metrics"`
	Notes    []string `json:"notes,omitempty"`
}

// Metric is one figure; Target and Met are set where the issue sets a target.
type Metric struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
}

func (r *Result) add(name string, value float64, unit string) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit})
}

// atMost records a figure whose target is an upper bound.
func (r *Result) atMost(name string, value float64, unit string, bound float64) {
	met := value <= bound
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit, Target: "≤ " + num(bound), Met: &met})
}

// atLeast records a figure whose target is a lower bound.
func (r *Result) atLeast(name string, value float64, unit string, bound float64) {
	met := value >= bound
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit, Target: "≥ " + num(bound), Met: &met})
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func (rep *Report) print(w io.Writer) {
	fmt.Fprintf(w, "\nMulti-Tenant Messaging benchmark, %s, %.0fs\n", rep.StartedAt.Format(time.RFC3339), rep.Seconds)
	m := rep.Machine
	fmt.Fprintf(w, "machine: %d CPU (%s), %d MiB RAM, %s; PostgreSQL %s; RabbitMQ %s\n\n",
		m.CPUs, m.CPUModel, m.MemoryMiB, m.GoVersion, m.Postgres, m.RabbitMQ)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tfigure\tvalue\tunit\ttarget\tmet")
	for _, r := range rep.Results {
		if r.Status != statusOK {
			fmt.Fprintf(tw, "%s\t%s (see below)\t\t\t\t\n", r.Scenario, strings.ToUpper(r.Status))
		}
		for _, mt := range r.Metrics {
			met := ""
			if mt.Met != nil {
				met = map[bool]string{true: "yes", false: "NO"}[*mt.Met]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, mt.Name, num(mt.Value), mt.Unit, mt.Target, met)
		}
	}
	_ = tw.Flush()
	for _, r := range rep.Results {
		if r.Status != statusOK {
			fmt.Fprintf(w, "%s (%s): %s\n", r.Status, r.Scenario, oneLine(r.Reason))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", r.Scenario, n)
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func (rep *Report) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Machine records where the figures were measured: they mean little without it.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryMiB int    `json:"memory_mib"`
	GoVersion string `json:"go_version"`
	Postgres  string `json:"postgres"`
	RabbitMQ  string `json:"rabbitmq"`
}

func (b *bench) machine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int
		_, _ = fmt.Sscanf(kb, "%d", &n)
		m.MemoryMiB = n / 1024
	}
	_ = b.pool.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres)
	if v, ok := b.amqp[0].Properties["version"].(string); ok {
		m.RabbitMQ = v
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (o options) summary() map[string]any {
	return map[string]any{
		"scenarios": o.scenarios, "tenants": o.tenants, "workers": o.workers,
		"drain_messages": o.drainMessages, "payload_bytes": o.payloadBytes,
		"baseline_prefetch": o.prefetch, "baseline_batch": o.batch, "baseline_db_conns": o.baselineConns, "baseline_single_ack": o.singleAck,
		"publish_channels": o.pubChannels, "publish_window": o.pubWindow,
		"sustained_rate": o.sustainedRate, "sustained_seconds": o.sustainedFor.Seconds(),
		"spawn_tenants": o.spawnTenants, "query_rows": o.queryRows, "query_page": o.queryPage,
		"query_repeats": o.queryRepeats, "replay_tenants": o.replayTenants, "scale_tenants": o.scaleTenants,
		"replicas_messages": o.replicasMessages, "replica_count": o.replicaCount,
	}
}

// percentile of sorted-in-place durations, in milliseconds (nearest rank).
func percentileMS(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(math.Ceil(p*float64(len(d)))) - 1
	i = max(0, min(i, len(d)-1))
	return float64(d[i].Microseconds()) / 1000
}
