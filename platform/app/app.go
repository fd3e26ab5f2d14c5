// Package app is the composition root every service shares: it loads configuration,
// builds the logger, database pool, broker connection, readiness, metrics and HTTP
// server, and runs them under one lifecycle. Each service's main adds its own parts.
package app

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/platform/health"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/platform/lifecycle"
	"github.com/multitenant/mtm/platform/logging"
	"github.com/multitenant/mtm/platform/metrics"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/tracing"
)

// App holds a service's shared infrastructure.
type App struct {
	Name   string
	Config *config.Base
	Log    *slog.Logger
	WLog   watermill.LoggerAdapter
	Pool   *pgxpool.Pool
	DB     *sql.DB
	Rabbit *rabbit.Conn
	// Topology is the queue types tenants are declared with (QUEUE_TYPE, DLQ_QUEUE_TYPE)
	// and their quorum queues' initial replica count (QUEUE_REPLICAS).
	Topology rabbit.Topology
	// Handshake dials a fresh broker connection periodically: the readiness check
	// "rabbitmq-handshake" fails when the broker accepts TCP but no longer completes a
	// new AMQP handshake (out of file handles), which the long-lived connection behind
	// "rabbitmq" cannot see. Nil for a standalone service.
	Handshake *rabbit.HandshakeProbe
	Ready     *health.Readiness
	Registry  *prometheus.Registry
	HTTP      *httpserver.Server

	opts Options
	// stopTracing flushes and stops the tracer provider (a no-op when tracing is off).
	stopTracing func(context.Context) error
}

// Options tune New.
type Options struct {
	// MaxDBConns caps the pool (0: pgx default).
	MaxDBConns int32
	// BodyLimit caps request bodies (0: 1 MiB).
	BodyLimit int
	// Standalone runs without Postgres and RabbitMQ: Pool, DB and Rabbit stay nil, they
	// are neither readiness checks nor lifecycle components, and -migrate is refused.
	// For a service that only calls the others over HTTP (the console).
	Standalone bool
	// OwnAuth leaves authentication of every route but /metrics to the service (the
	// console signs operators in with a session cookie, not a bearer header); /metrics
	// keeps the bearer admin check of the other services.
	OwnAuth bool
	// Tracing is what the OTEL_* variables ask for (Configure reads them); the zero
	// value leaves tracing off.
	Tracing tracing.Config
}

// Exit codes shared by the three binaries.
const (
	ExitFailure = 1 // start-up, migration or shutdown failed
	ExitUsage   = 2 // bad configuration or flags: nothing was started
)

// Boot is the start-up path every service's main shares: command line, configuration,
// infrastructure and -migrate. Each main registers its own flags on flag.CommandLine,
// calls Configure, then Start, and keeps only its own wiring.
type Boot struct {
	name    string
	base    *config.Base
	migrate bool
	tracing tracing.Config
}

// errNoDatabase is why a standalone service refuses -migrate.
var errNoDatabase = errors.New("-migrate: this service has no database")

// Configure adds -migrate to the service's flags, parses the command line and fills cfg
// (a struct embedding base) from CONFIG_FILE and the environment, using defaultAddr when
// HTTP_ADDR is unset. A bad value exits the process with one line naming the variable.
func Configure(name string, cfg any, base *config.Base, defaultAddr string) *Boot {
	b := &Boot{name: name, base: base}
	flag.BoolVar(&b.migrate, "migrate", false, "apply database migrations and exit")
	flag.Parse()
	if err := config.Load(cfg, base, defaultAddr); err != nil {
		Exit(name, ExitUsage, fmt.Errorf("invalid configuration: %w", err))
	}
	tc, err := tracing.FromEnv(name, os.Getenv)
	if err != nil {
		Exit(name, ExitUsage, fmt.Errorf("invalid configuration: %w", err))
	}
	b.tracing = tc
	return b
}

// Start builds the infrastructure (nothing connects yet). With -migrate it applies the
// migrations and exits instead of returning.
func (b *Boot) Start(ctx context.Context, opts Options) *App {
	if b.migrate && opts.Standalone {
		Exit(b.name, ExitUsage, errNoDatabase)
	}
	opts.Tracing = b.tracing
	a, err := New(ctx, b.name, b.base, opts)
	if err != nil {
		Exit(b.name, ExitFailure, err)
	}
	if b.migrate {
		mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
		err := a.Migrate(mctx)
		cancel()
		if err != nil {
			a.Fatal("migrate failed", err)
		}
		os.Exit(0)
	}
	return a
}

// readinessInterval is how often the readiness checks run on their own, keeping the
// service_ready gauge current between /readyz probes (and where there are none).
const readinessInterval = 5 * time.Second

// migrateTimeout bounds -migrate, including the wait for the database to come up.
const migrateTimeout = 2 * time.Minute

// Exit prints "name: err" on stderr and exits with code: for errors before the logger
// exists or that an operator must read on the terminal (bad flags or configuration).
func Exit(name string, code int, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(code)
}

// Fatal logs a start-up failure and exits 1.
func (a *App) Fatal(msg string, err error) {
	a.Log.Error(msg, "err", err)
	os.Exit(ExitFailure)
}

// Serve runs the service (see Run) and exits 1 if it stopped with an error; main's last call.
func (a *App) Serve(ctx context.Context, comps ...lifecycle.Component) {
	if err := a.Run(ctx, comps...); err != nil {
		a.Fatal("exited with error", err)
	}
}

// New builds the infrastructure. Nothing connects yet: Run dials with backoff, so a
// service whose database or broker is down starts, logs, and reports not-ready.
func New(ctx context.Context, name string, base *config.Base, opts Options) (*App, error) {
	log := logging.New(name, base.LogLevel, base.LogFormat)
	// Before the pool and the HTTP server exist, so both see the installed provider.
	stopTracing, err := tracing.Setup(ctx, opts.Tracing)
	if err != nil {
		return nil, err
	}
	if opts.Tracing.Enabled {
		log.Info("tracing on: exporting spans over OTLP/HTTP")
	}
	a := &App{
		Name:     name,
		Config:   base,
		Log:      log,
		WLog:     watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}),
		Ready:    health.New(),
		Registry: metrics.NewRegistry(),
		opts:     opts,

		stopTracing: stopTracing,
	}
	if !opts.Standalone {
		topology, err := TopologyOf(base)
		if err != nil {
			return nil, err
		}
		a.Topology = topology
		if nodes := len(rabbit.SplitURLs(base.RabbitMQURL)); nodes > 1 {
			warnSingleNodeQueues(log, topology, nodes)
		}
		pool, err := postgres.NewPool(ctx, base.DatabaseURL, opts.MaxDBConns)
		if err != nil {
			return nil, err
		}
		a.Pool = pool
		a.DB = postgres.OpenDB(pool)
		a.Rabbit = rabbit.NewConn(base.RabbitMQURL, name, log)
		a.Handshake = rabbit.NewHandshakeProbe(base.RabbitMQURL, name+"-handshake-probe", log,
			rabbit.HandshakeInterval, rabbit.HandshakeTimeout)
		a.Ready.Add("postgres", postgres.Ping(pool))
		a.Ready.Add("rabbitmq", a.Rabbit.Ping)
		a.Ready.Add("rabbitmq-handshake", a.Handshake.Check)
	}
	a.Registry.MustRegister(a.Ready.Gauge())
	// Every route but the probes and docs needs a token when JWT_SECRET is set.
	authn := auth.Middleware(auth.ConfigFrom(base))
	if opts.OwnAuth {
		authn = auth.MetricsOnly(authn)
	}
	a.HTTP = httpserver.New(httpserver.Options{
		Service:     name,
		Addr:        base.HTTPAddr,
		Log:         log,
		Readiness:   a.Ready,
		Registry:    a.Registry,
		BodyLimit:   opts.BodyLimit,
		Auth:        authn,
		MetricsAddr: base.MetricsAddr,
	})
	if base.JWTSecret == "" {
		log.Warn("authentication is off: JWT_SECRET is not set; every endpoint is open")
	}
	return a, nil
}

// warnSingleNodeQueues says when a cluster's tenants get classic queues: a classic
// queue lives on one node, and while that node is down the queue cannot even be
// declared, so the consumer does not set its tenant up (a classic DLQ included).
func warnSingleNodeQueues(log *slog.Logger, t rabbit.Topology, nodes int) {
	var classic []string
	if t.Queue == rabbit.Classic {
		classic = append(classic, "QUEUE_TYPE")
	}
	if t.DLQ == rabbit.Classic {
		classic = append(classic, "DLQ_QUEUE_TYPE")
	}
	if len(classic) > 0 {
		log.Warn("RABBITMQ_URL lists several nodes but tenant queues are classic: each lives on one node, and while that node is down its tenants are not consumed; set quorum for replicated queues",
			"nodes", nodes, "classic", strings.Join(classic, ", "))
	}
}

// TopologyOf is the queue topology QUEUE_TYPE, DLQ_QUEUE_TYPE and QUEUE_REPLICAS ask for.
func TopologyOf(base *config.Base) (rabbit.Topology, error) {
	q, err := rabbit.ParseQueueType(base.QueueType)
	if err != nil {
		return rabbit.Topology{}, fmt.Errorf("QUEUE_TYPE: %w", err)
	}
	dlq, err := rabbit.ParseQueueType(base.DLQQueueType)
	if err != nil {
		return rabbit.Topology{}, fmt.Errorf("DLQ_QUEUE_TYPE: %w", err)
	}
	if base.QueueReplicas < 0 || base.QueueReplicas > rabbit.MaxReplicas {
		return rabbit.Topology{}, fmt.Errorf("QUEUE_REPLICAS: must be between 0 and %d, got %d", rabbit.MaxReplicas, base.QueueReplicas)
	}
	return rabbit.Topology{Queue: q, DLQ: dlq, Replicas: base.QueueReplicas}, nil
}

// Migrate waits for the database, then applies all migrations.
func (a *App) Migrate(ctx context.Context) error {
	if a.Pool == nil {
		return errNoDatabase
	}
	// Creating the database is a convenience for development; where the role may not
	// create databases the error is logged and migration proceeds on the existing one.
	if err := postgres.EnsureDatabase(ctx, a.Config.DatabaseURL); err != nil {
		a.Log.Warn("could not ensure database exists", "err", err)
	}
	if err := postgres.WaitReady(ctx, a.Pool, a.Log); err != nil {
		return err
	}
	if err := postgres.Migrate(ctx, a.Pool); err != nil {
		return err
	}
	a.Log.Info("migrations applied")
	return nil
}

// Run runs the broker connection (unless Standalone), the given components and the HTTP server until
// SIGINT/SIGTERM, then stops them in reverse order: HTTP first (after /readyz turns
// 503 and SHUTDOWN_DRAIN_DELAY has passed), then the components, then the broker
// connection and the database pool — all within SHUTDOWN_TIMEOUT.
func (a *App) Run(ctx context.Context, comps ...lifecycle.Component) error {
	// First, so it stops last: the spans of the final requests and deliveries are
	// flushed after everything that makes them has stopped.
	all := []lifecycle.Component{{
		Name: "tracing",
		Run:  func(context.Context) error { return nil },
		Stop: a.stopTracing,
	}}
	if !a.opts.Standalone {
		all = append(all,
			lifecycle.Component{
				Name: "postgres",
				Run:  func(context.Context) error { return nil },
				Stop: a.closeDatabase,
			},
			lifecycle.Cancellable("rabbitmq", a.Rabbit.Run),
			lifecycle.Cancellable("rabbitmq-handshake", a.Handshake.Run),
		)
	}
	all = append(all, lifecycle.Cancellable("readiness", func(ctx context.Context) error {
		a.Ready.Watch(ctx, readinessInterval)
		return nil
	}))
	all = append(all, comps...)
	all = append(all, lifecycle.Component{Name: "http", Run: a.HTTP.Run, Stop: a.HTTP.Stop})
	runner := lifecycle.Runner{
		Log:        a.Log,
		Timeout:    a.Config.ShutdownTimeout,
		DrainDelay: a.Config.ShutdownDrainDelay,
		BeforeStop: a.Ready.SetDraining,
	}
	if err := runner.Run(ctx, all...); err != nil {
		return err
	}
	a.Log.Info("stopped cleanly")
	return nil
}

// closeDatabase closes the pool within the shutdown deadline. pgxpool.Close waits for
// every acquired connection to be released, so a query stuck behind a lock would
// otherwise hold the process past SHUTDOWN_TIMEOUT; past the deadline the process exits
// and the server drops the connections.
func (a *App) closeDatabase(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		_ = a.DB.Close()
		a.Pool.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close database pool: %w", ctx.Err())
	}
}
