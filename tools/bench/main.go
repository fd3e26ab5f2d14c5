// Command bench is the benchmark harness of Multi-Tenant Messaging (README "Performance"). It runs
// the raw baseline (amqp091 + pgx, no services) and the project scenarios against the
// real binaries, Postgres and RabbitMQ, prints one table and writes it as JSON.
//
// Run it from the repository root after `make build`: `make bench`, or
// `go run ./tools/bench -drain-messages 5000 -scenarios baseline,drain` for a quick run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"
)

// allScenarios is the default order: the baseline first (no services running), the
// replay and scale scenarios last because they create the most state. replicas (about
// 20 s) reuses the drain workload and must run before scale and density: its consumer
// processes start from scratch and would set up their thousands of tenants first.
var allScenarios = []string{"baseline", "baseline-classic", "drain", "sustained", "replicas", "noisy", "spawn", "query", "replay", "scale", "density"}

// options are the harness's flags. Sizes default to the workloads; shrink them
// for quick runs while developing.
type options struct {
	scenarios   []string
	out         string
	databaseURL string
	rabbitURL   string
	bin         string
	logDir      string
	keepDB      bool
	logLevel    string

	commandPort, queryPort, consumerPort int

	tenants         int
	workers         int
	drainMessages   int
	payloadBytes    int
	prefetch        int
	batch           int
	baselineConns   int
	singleAck       bool
	pubChannels     int
	pubWindow       int
	drainTimeout    time.Duration
	sustainedRate   int
	sustainedFor    time.Duration
	spawnTenants    int
	queryRows       int
	queryPage       int
	queryRepeats    int
	replayTenants   int
	scaleTenants    int
	noisyWorkers    int
	densityTenants  int
	densityMessages int
	densityTimeout  time.Duration
	densityParallel int
	managementURL   string
	noisyBacklog    int
	noisyRate       int
	noisyFor        time.Duration
	scaleTimeout    time.Duration
	serviceStopWait time.Duration

	// The replicas scenario: one drain of replicasMessages by one consumer process,
	// one by replicaCount processes sharing the tenants.
	replicasMessages int
	replicaCount     int
}

func parseFlags() (options, error) {
	var o options
	var scenarios string
	flag.StringVar(&scenarios, "scenarios", "all", "comma-separated scenarios to run: all or "+strings.Join(allScenarios, ","))
	flag.StringVar(&o.out, "out", "bench/results/latest.json", "JSON results file")
	flag.StringVar(&o.databaseURL, "database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mtm_bench?sslmode=disable"), "bench database (dropped and recreated at start); env DATABASE_URL")
	flag.StringVar(&o.rabbitURL, "rabbitmq-url", envOr("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ; env RABBITMQ_URL")
	flag.StringVar(&o.bin, "bin", "bin", "directory holding command, consumer and query (make build)")
	flag.StringVar(&o.logDir, "log-dir", filepath.Join(os.TempDir(), "mtm-bench"), "where the services' logs go")
	flag.BoolVar(&o.keepDB, "keep-db", false, "keep the bench database at the end (it is dropped at the next start anyway)")
	flag.StringVar(&o.logLevel, "service-log-level", "warn", "LOG_LEVEL of the services under test")
	flag.IntVar(&o.commandPort, "command-port", 18080, "command service port")
	flag.IntVar(&o.queryPort, "query-port", 18081, "query service port")
	flag.IntVar(&o.consumerPort, "consumer-port", 18082, "consumer service port; the replicas scenario's extra consumer processes take this +100, +200, …")
	flag.IntVar(&o.tenants, "tenants", 10, "tenants in the baseline, drain and sustained workloads")
	flag.IntVar(&o.workers, "workers", 3, "workers (AMQP consumers) per tenant in the baseline, drain and sustained workloads")
	flag.IntVar(&o.drainMessages, "drain-messages", 100_000, "messages in the baseline and drain workloads")
	flag.IntVar(&o.payloadBytes, "payload-bytes", 200, "approximate JSON body size")
	flag.IntVar(&o.prefetch, "prefetch", 500, "baseline consumer prefetch per AMQP consumer")
	flag.IntVar(&o.batch, "batch", 500, "baseline consumer's largest insert batch")
	flag.IntVar(&o.baselineConns, "baseline-db-conns", 8, "baseline consumer's Postgres pool size")
	var ack string
	flag.StringVar(&ack, "baseline-ack", "multi", "baseline acks: multi (one multi-ack per commit) or single (diagnostic: one ack per delivery)")
	flag.IntVar(&o.pubChannels, "publish-channels", 8, "publisher channels (spread over 2 connections)")
	flag.IntVar(&o.pubWindow, "publish-window", 500, "unconfirmed publishes in flight per channel")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 3*time.Minute, "give up on a drain after this long")
	flag.IntVar(&o.sustainedRate, "sustained-rate", 5000, "sustained publish rate, msg/s")
	flag.DurationVar(&o.sustainedFor, "sustained-duration", 30*time.Second, "sustained publish duration")
	flag.IntVar(&o.spawnTenants, "spawn-tenants", 50, "tenants in the spawn scenario")
	flag.IntVar(&o.queryRows, "query-rows", 1_000_000, "rows of the query scenario's tenant")
	flag.IntVar(&o.queryPage, "query-page", 1000, "deep page timed in the query scenario (limit 100)")
	flag.IntVar(&o.queryRepeats, "query-repeats", 200, "timed GETs per page")
	flag.IntVar(&o.replayTenants, "replay-tenants", 10_000, "tenants in the replay scenario (2 events each)")
	flag.IntVar(&o.scaleTenants, "scale-tenants", 1000, "tenants (1 worker each) in the scale scenario")
	flag.IntVar(&o.densityTenants, "density-tenants", 5000, "tenants (1 worker each) in the density scenario")
	flag.IntVar(&o.densityMessages, "density-messages", 100_000, "messages drained over all tenants in the density scenario")
	flag.IntVar(&o.densityParallel, "density-parallel", 16, "POST /tenants requests in flight in the density scenario")
	flag.DurationVar(&o.densityTimeout, "density-timeout", 5*time.Minute, "give up waiting for the density tenants to consume after this long")
	flag.IntVar(&o.replicasMessages, "replicas-messages", 100_000, "messages in each drain of the replicas scenario (one by 1 consumer process, one by -replica-count)")
	flag.IntVar(&o.replicaCount, "replica-count", 3, "consumer processes sharing the tenants in the replicas scenario's second drain")
	flag.StringVar(&o.managementURL, "management-url", envOr("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672"), "RabbitMQ management API, for the broker's memory and file handles; env RABBITMQ_MANAGEMENT_URL")
	flag.IntVar(&o.noisyWorkers, "noisy-workers", 16, "workers of the busy tenant in the noisy scenario")
	flag.IntVar(&o.noisyBacklog, "noisy-backlog", 200_000, "backlog the busy tenant drains in the noisy scenario")
	flag.IntVar(&o.noisyRate, "noisy-rate", 200, "publish rate of the quiet tenant in the noisy scenario, msg/s")
	flag.DurationVar(&o.noisyFor, "noisy-alone", 15*time.Second, "how long the quiet tenant runs alone in the noisy scenario")
	flag.DurationVar(&o.scaleTimeout, "scale-timeout", 3*time.Minute, "give up on the scale scenario after this long")
	flag.DurationVar(&o.serviceStopWait, "service-stop-wait", 40*time.Second, "SIGKILL a service that has not exited this long after SIGTERM")
	flag.Parse()

	switch ack {
	case "multi":
	case "single":
		o.singleAck = true
	default:
		return o, fmt.Errorf("-baseline-ack: %q is neither multi nor single", ack)
	}
	if scenarios == "all" || scenarios == "" {
		o.scenarios = allScenarios
	} else {
		for _, s := range strings.Split(scenarios, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScenarios, s) {
				return o, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ","))
			}
			o.scenarios = append(o.scenarios, s)
		}
	}
	if slices.Contains(o.scenarios, "replicas") {
		if o.replicaCount < 2 || o.replicasMessages < o.tenants {
			return o, errors.New("-replica-count must be ≥ 2, -replicas-messages ≥ -tenants")
		}
		for i := 2; i <= o.replicaCount; i++ {
			if p := replicaPort(o.consumerPort, i); p == o.commandPort || p == o.queryPort {
				return o, fmt.Errorf("consumer replica %d's port %d (-consumer-port + %d) is the command or query port", i, p, p-o.consumerPort)
			}
		}
	}
	if o.tenants < 1 || o.workers < 1 || o.drainMessages < o.tenants || o.payloadBytes < 100 {
		return o, errors.New("-tenants, -workers must be ≥ 1, -drain-messages ≥ -tenants, -payload-bytes ≥ 100")
	}
	if o.pubChannels < 1 || o.pubWindow < 1 || o.prefetch < 1 || o.batch < 1 || o.baselineConns < 1 {
		return o, errors.New("-publish-channels, -publish-window, -prefetch, -batch, -baseline-db-conns must be ≥ 1")
	}
	if o.queryRows < o.queryPage*100+1 {
		return o, fmt.Errorf("-query-rows must exceed -query-page × 100 (%d)", o.queryPage*100)
	}
	return o, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	started := time.Now()
	b, err := setup(ctx, o, log)
	if err != nil {
		return err
	}
	// Cleanup must run even after Ctrl+C, so it gets its own deadline.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		b.cleanup(cctx)
	}()

	report := Report{StartedAt: started.UTC(), Machine: b.machine(ctx), Options: o.summary()}
	for _, name := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		r := b.runScenario(ctx, name)
		report.Results = append(report.Results, r)
		log.Info("scenario done", "scenario", name, "status", r.Status, "seconds", fmt.Sprintf("%.1f", r.Seconds))
		// Write after every scenario so an interrupted run keeps what it measured.
		report.Seconds = time.Since(started).Seconds()
		if err := report.write(o.out); err != nil {
			log.Error("write results", "err", err)
		}
	}
	report.Seconds = time.Since(started).Seconds()
	var table strings.Builder
	report.print(&table)
	fmt.Print(table.String())
	if err := report.write(o.out); err != nil {
		return err
	}
	// The table as printed, next to the JSON, for the README's Performance section.
	txt := strings.TrimSuffix(o.out, filepath.Ext(o.out)) + ".txt"
	if err := os.WriteFile(txt, []byte(table.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", txt, err)
	}
	fmt.Printf("\nresults written to %s and %s; service logs in %s\n", o.out, txt, o.logDir)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Missed targets are figures, not failures; a scenario that broke is a failure.
	for _, r := range report.Results {
		if r.Status == statusFailed {
			return fmt.Errorf("scenario %s failed: %s", r.Scenario, oneLine(r.Reason))
		}
	}
	return nil
}

// runScenario runs one scenario; it never takes the harness down: a missing service or
// endpoint becomes "unavailable", any other error or panic "failed".
func (b *bench) runScenario(ctx context.Context, name string) (r Result) {
	r = Result{Scenario: name, Status: statusOK}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			r.Status, r.Reason = statusFailed, fmt.Sprintf("panic: %v\n%s", p, debug.Stack())
		}
		r.Seconds = time.Since(start).Seconds()
	}()
	var err error
	switch name {
	case "baseline":
		err = b.baseline(ctx, &r, true)
	case "baseline-classic":
		err = b.baseline(ctx, &r, false)
	case "drain":
		err = b.drain(ctx, &r)
	case "sustained":
		err = b.sustained(ctx, &r)
	case "noisy":
		err = b.noisy(ctx, &r)
	case "spawn":
		err = b.spawn(ctx, &r)
	case "query":
		err = b.query(ctx, &r)
	case "replay":
		err = b.replay(ctx, &r)
	case "scale":
		err = b.scale(ctx, &r)
	case "density":
		err = b.density(ctx, &r)
	case "replicas":
		err = b.replicas(ctx, &r)
	}
	var u *unavailableError
	switch {
	case errors.As(err, &u):
		r.Status, r.Reason = statusUnavailable, u.reason
	case err != nil:
		r.Status, r.Reason = statusFailed, err.Error()
	}
	return r
}

// unavailableError marks a scenario that cannot run because a service or endpoint it
// needs is not there (yet): reported, not fatal.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return "unavailable: " + e.reason }

func unavailable(format string, args ...any) error {
	return &unavailableError{reason: fmt.Sprintf(format, args...)}
}
