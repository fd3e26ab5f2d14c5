package consumer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/health"
	"github.com/multitenant/mtm/platform/lifecycle"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
	"github.com/multitenant/mtm/services/consumer/internal/desired"
	"github.com/multitenant/mtm/services/consumer/internal/membership"
	"github.com/multitenant/mtm/services/consumer/internal/store"
)

// ConsumerGroupPrefix starts each process's own offset name on the events outbox.
// Every replica must see every tenant event, so replicas never share a group (a
// shared group splits the events between them, e.g. during a rolling update): each
// process subscribes as NewGroup(), starting at the outbox head it read before
// replaying the event store (see startAtHead).
const ConsumerGroupPrefix = "consumer-"

// NewGroup returns a fresh per-process consumer group name for Deps.Group.
func NewGroup() string { return ConsumerGroupPrefix + uuid.NewString() }

// Deps are the shared infrastructure the service runs on (see platform/app).
type Deps struct {
	Log    *slog.Logger
	WLog   watermill.LoggerAdapter
	Pool   *pgxpool.Pool
	DB     *sql.DB
	Rabbit *rabbit.Conn // topology, dead letters and sampling
	URL    string       // broker URL for the worker connections
	// Topology is the queue types of new tenants' queues (QUEUE_TYPE, DLQ_QUEUE_TYPE);
	// the command service must declare with the same.
	Topology rabbit.Topology
	Ready    *health.Readiness
	Registry prometheus.Registerer
	// MaxMessageBytes: larger bodies are dead-lettered.
	MaxMessageBytes int
	// Events is the event store desired state is rebuilt from at start.
	Events *eventstore.Store
	// Subscriber follows the events outbox as Group from where the replay began; the
	// service closes it on shutdown.
	Subscriber message.Subscriber
	// Group is this process's own consumer group (NewGroup); its offsets row is deleted
	// on graceful shutdown.
	Group string
	// ReplicaID names this replica among the consumer replicas sharing the tenants
	// (membership.NewID when empty).
	ReplicaID string
}

// Service is the consumer. Build it with New, run it with Component.
type Service struct {
	cfg    Settings
	d      Deps
	log    *slog.Logger
	m      *metrics
	state  *desired.State
	conns  []*rabbit.Conn
	sub    *amqpsub.Subscriber
	writer *store.Writer
	dl     *deadLetterer
	arch   *archiver
	// backlog writes the sampler's passes to tenant_workers.
	backlog *backlogReporter
	// members says which tenants this replica owns; it runs only those.
	members *membership.Membership

	wake chan struct{} // reconcile now
	// noArchive leaves dead letters in the DLQs (tests of the DLQ itself).
	noArchive bool
	// setupPerPass bounds the tenants set up per reconcile pass (setupPerPass; tests
	// lower it to cross pass boundaries with a few tenants).
	setupPerPass int
	eventsLive   atomic.Bool
	// typeChangeExplained is set once the log said why existing queues keep a type
	// other than QUEUE_TYPE/DLQ_QUEUE_TYPE; later tenants get a short line each.
	typeChangeExplained atomic.Bool

	// workers is what every tenant pool is built with.
	workers *poolDeps
	// live is owned by the reconciler goroutine (and by shutdown after it stopped): the
	// tenants this replica owns and runs.
	live map[string]*liveTenant
	// handedOver are the pools of tenants given to another replica, finishing their
	// in-flight messages (reconciler-owned; the shutdown waits for them).
	handedOver []*tenantPool
	// unreported are handed-over tenants whose 0 report is not written yet
	// (reconciler-owned).
	unreported map[string]uuid.UUID

	// Deleted tenants are removed off the reconciler goroutine (draining and dropping
	// the partition can take long); the reconciler starts them and waits for them on exit.
	remMu    sync.Mutex
	removals map[string]*removal
	remWG    sync.WaitGroup

	// abort ends workers.abort: handlers give up waiting for commits (shutdown deadline).
	abort context.CancelFunc

	stop lifecycle.Stopper
}

// New builds the service; nothing connects until Run.
func New(cfg Settings, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Events == nil || d.Subscriber == nil || !strings.HasPrefix(d.Group, ConsumerGroupPrefix) {
		return nil, errors.New("consumer: Deps need Events, Subscriber and a Group from NewGroup")
	}
	if _, err := rabbit.ParseQueueType(string(d.Topology.Queue)); err != nil {
		return nil, fmt.Errorf("consumer: Deps.Topology.Queue: %w", err)
	}
	if _, err := rabbit.ParseQueueType(string(d.Topology.DLQ)); err != nil {
		return nil, fmt.Errorf("consumer: Deps.Topology.DLQ: %w", err)
	}
	s := &Service{
		cfg:          cfg,
		d:            d,
		log:          d.Log,
		m:            newMetrics(d.Registry),
		state:        desired.New(),
		wake:         make(chan struct{}, 1),
		setupPerPass: setupPerPass,
		live:         map[string]*liveTenant{},
		unreported:   map[string]uuid.UUID{},
		removals:     map[string]*removal{},
	}
	abortCtx, abort := context.WithCancel(context.Background())
	s.abort = abort
	if d.ReplicaID == "" {
		d.ReplicaID = membership.NewID()
		s.d.ReplicaID = d.ReplicaID
	}
	s.members = membership.New(d.ReplicaID, membership.Config{Heartbeat: cfg.ReplicaHeartbeat, TTL: cfg.ReplicaTTL}, d.Pool, d.Log)
	s.log = d.Log.With("replica", d.ReplicaID)
	s.arch = newArchiver(d.Rabbit, d.Pool, d.Log, s.m, s.state.Live, s.ownedTenants, pendingSampleInterval(cfg.ReconcileInterval))
	s.backlog = newBacklogReporter(d.Pool, d.Log)
	s.dl = &deadLetterer{conn: d.Rabbit, declare: s.declareIfLive, published: s.arch.request}
	sources := make([]amqpsub.ChannelSource, cfg.Connections)
	for i := range cfg.Connections {
		c := rabbit.NewConn(d.URL, "consumer-workers-"+strconv.Itoa(i), d.Log)
		s.conns = append(s.conns, c)
		sources[i] = c
	}
	sub, err := amqpsub.New(amqpsub.Config{Sources: sources, Prefetch: cfg.Prefetch, AckDelay: cfg.AckDelay, TagPrefix: "consumer", Log: d.Log})
	if err != nil {
		abort()
		return nil, err
	}
	s.sub = sub
	s.writer = store.New(store.Config{
		Pool:            d.Pool,
		Log:             d.Log,
		EnsurePartition: s.ensurePartitionIfLive,
		MaxBatch:        cfg.MaxBatch,
		Flushers:        cfg.Flushers,
		OnRetry:         func(error) { s.m.storeRetries.Inc() },
		OnCommit:        func(n int) { s.m.batchSize.Observe(float64(n)) },
	})
	s.workers = &poolDeps{
		sub: s.sub, writer: s.writer, dl: s.dl, m: s.m, log: s.log,
		abort: abortCtx, poke: s.poke,
		maxBatch: cfg.MaxBatch, maxMessageBytes: d.MaxMessageBytes,
	}
	d.Ready.Add("replica membership", s.members.Ready)
	d.Ready.Add("events subscription", func(context.Context) error {
		if !s.eventsLive.Load() {
			return errors.New("events subscription not running")
		}
		return nil
	})
	return s, nil
}

// Component runs the service under the platform lifecycle.
func (s *Service) Component() lifecycle.Component {
	return lifecycle.Component{Name: "consumer", Run: s.Run, Stop: s.Stop}
}

// Run starts everything and blocks until Stop has finished the shutdown (or ctx ends,
// which forces it).
func (s *Service) Run(ctx context.Context) error {
	defer s.stop.Finish()
	var infra sync.WaitGroup
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	for _, c := range s.conns {
		infra.Add(1)
		go func() { defer infra.Done(); _ = c.Run(connCtx) }()
	}
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	infra.Add(1)
	go func() { defer infra.Done(); _ = s.writer.Run(writerCtx) }()

	controlCtx, stopControl := context.WithCancel(ctx)
	var control sync.WaitGroup
	control.Add(4)
	go func() { defer control.Done(); s.members.Run(controlCtx) }()
	go func() { defer control.Done(); s.runEvents(controlCtx) }()
	go func() { defer control.Done(); s.runReconciler(controlCtx) }()
	go func() { defer control.Done(); s.backlog.run(controlCtx) }()
	if !s.noArchive {
		// A pass cut short returns its unacked dead letters to the DLQ (channel closed).
		control.Add(1)
		go func() { defer control.Done(); s.arch.run(controlCtx) }()
	}

	stopCtx := ctx
	select {
	case <-s.stop.Requested():
		stopCtx = s.stop.StopContext()
	case <-ctx.Done():
	}

	// Shutdown: no new desired state, stop consuming everywhere (basic.cancel), let
	// in-flight messages commit and ack, then close channels, writer and connections.
	stopControl()
	control.Wait()
	s.forgetGroup(stopCtx)
	s.closePools(stopCtx)
	s.leave(stopCtx)
	_ = s.sub.Close()
	s.dl.close()
	stopWriter()
	stopConns()
	infra.Wait()
	return nil
}

// Stop asks Run to shut down gracefully and waits for it within ctx.
func (s *Service) Stop(ctx context.Context) error {
	if err := s.stop.Stop(ctx); err != nil {
		return fmt.Errorf("consumer shutdown: %w", err)
	}
	return nil
}

// closePools pauses every pool (the reconciler and removals have stopped) and waits for
// the in-flight messages to commit and ack until shortly before stopCtx's deadline;
// then the handlers give up on the rest (the broker redelivers them).
func (s *Service) closePools(stopCtx context.Context) {
	var pools []*tenantPool
	for _, lt := range s.live {
		lt.pool.Pause()
		pools = append(pools, lt.pool)
	}
	s.remMu.Lock()
	for _, r := range s.removals {
		if r.pool != nil {
			pools = append(pools, r.pool) // paused when its removal started
		}
	}
	s.remMu.Unlock()
	pools = append(pools, s.handedOver...)

	waitCtx, cancel := context.WithTimeout(context.Background(), deadlineWithMargin(stopCtx))
	defer cancel()
	for _, p := range pools {
		if p.Wait(waitCtx) != nil {
			s.log.Warn("shutdown deadline near: abandoning in-flight messages (the broker redelivers them)")
			break
		}
	}
	s.abort()
	for _, p := range pools {
		_ = p.Wait(context.Background())
	}
}

// deadlineWithMargin leaves a second of ctx's deadline for closing channels.
func deadlineWithMargin(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return 30 * time.Second
	}
	return max(time.Until(dl)-time.Second, 0)
}

// pendingSampleInterval is how often dead_letters_pending is read from Postgres: a
// grouped count over the pending rows, so less often than queue depths.
func pendingSampleInterval(reconcile time.Duration) time.Duration { return 5 * reconcile }

// ownedTenants lists the live tenants this replica owns.
func (s *Service) ownedTenants() []string {
	view, ok := s.members.View()
	if !ok {
		return nil
	}
	var out []string
	for _, t := range s.state.Snapshot() {
		if !t.Deleted && view.Owner(t.ID) == s.d.ReplicaID {
			out = append(out, t.ID)
		}
	}
	return out
}

// leave hands this replica's tenants over once its pools have stopped and their
// in-flight messages committed: its membership row and worker reports go, and the
// other replicas take the tenants at their next heartbeat.
func (s *Service) leave(stopCtx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(stopCtx), 5*time.Second)
	defer cancel()
	if err := s.members.Leave(ctx); err != nil {
		s.log.Warn("could not leave the consumer replicas; the others take its tenants over when its heartbeat expires", "err", err, "ttl", s.cfg.ReplicaTTL)
		return
	}
	s.log.Info("left the consumer replicas; the others take its tenants over")
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sleepCtx waits d or until ctx ends; false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
