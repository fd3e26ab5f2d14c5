// Package projector keeps the query-side tenants read model up to date from the event
// stream, reports how far behind it is, and rebuilds it from the event store (replay).
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/lifecycle"
	"github.com/multitenant/mtm/projections/tenants"
)

// ConsumerGroup is the query service's offset row in the event outbox. Never rename it:
// a new name re-reads every event (harmless, but slow) and orphans the old row.
const ConsumerGroup = "query"

// LagMetric is the gauge name dashboards chart.
const LagMetric = "query_projection_lag_events"

// Outcomes counted per event.
const (
	outcomeApplied = "applied"
	outcomeNoop    = "noop"
	outcomeUnknown = "unknown_type"
	outcomeInvalid = "invalid"
	outcomeFailed  = "failed"
)

// Metrics are the projector's Prometheus series.
type Metrics struct {
	lag    prometheus.Gauge
	events *prometheus.CounterVec
}

// NewMetrics registers the projector's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: LagMetric,
			Help: "Events in the event store not yet applied to the tenants read model (store head position minus checkpoint).",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "query_projection_events_total",
			Help: "Events handled by the tenants projection, by outcome (applied, noop, unknown_type, invalid, failed).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.lag, m.events)
	return m
}

// Options configure a Projector.
type Options struct {
	Pool       *pgxpool.Pool
	Store      *eventstore.Store
	Subscriber message.Subscriber
	Log        *slog.Logger
	Metrics    *Metrics
	// LagInterval is how often lag is recomputed while idle (default 1s); it is also
	// recomputed after every applied event.
	LagInterval time.Duration
}

// Projector applies events from the subscription to the tenants read model.
type Projector struct {
	opts Options
	stop lifecycle.Stopper
	live atomic.Bool // the event subscription is open
}

// New builds a projector; Run starts it.
func New(opts Options) *Projector {
	if opts.LagInterval <= 0 {
		opts.LagInterval = time.Second
	}
	return &Projector{opts: opts}
}

// Component runs the projector under the service lifecycle.
func (p *Projector) Component() lifecycle.Component {
	return lifecycle.Component{Name: "tenants-projection", Run: p.Run, Stop: p.Stop}
}

// Run subscribes and applies events until Stop or ctx ends. A database that is down at
// start is retried, not fatal: the service stays up and reports not-ready meanwhile.
func (p *Projector) Run(ctx context.Context) error {
	// Stop may come before or during Subscribe: it cancels ctx either way.
	return p.stop.Run(ctx, p.run)
}

func (p *Projector) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.lagLoop(ctx)
	}()

	msgs, err := p.subscribe(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.live.Store(true)
	defer p.live.Store(false)
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-msgs:
			if !ok {
				return nil
			}
			p.handle(ctx, msg)
		}
	}
}

// Ready backs /readyz: a query service whose projection is not following the events
// would serve a read model that silently stops changing.
func (p *Projector) Ready(context.Context) error {
	if !p.live.Load() {
		return errors.New("tenants projection is not subscribed to the event stream")
	}
	return nil
}

// Stop ends Run and waits for it within ctx. The event being applied, if any,
// finishes; the subscriber is closed, so an unacknowledged event is delivered again on
// the next start (applying it is idempotent).
func (p *Projector) Stop(ctx context.Context) error {
	var errs []error
	if err := p.stop.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if c, ok := p.opts.Subscriber.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close event subscriber: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (p *Projector) subscribe(ctx context.Context) (<-chan *message.Message, error) {
	backoff := 200 * time.Millisecond
	for {
		msgs, err := p.opts.Subscriber.Subscribe(ctx, events.Topic)
		if err == nil {
			return msgs, nil
		}
		p.opts.Log.Warn("subscribe to tenant events failed, retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// handle applies one event in its own transaction and acks it after the commit. A
// database failure nacks it (the subscriber redelivers it); an event that can never be
// applied (undecodable) is logged, counted and acked so it cannot block the stream.
func (p *Projector) handle(ctx context.Context, msg *message.Message) {
	log := p.opts.Log.With("event_id", msg.UUID, "position", msg.Metadata.Get(eventstore.MetaPosition))
	pos, err := strconv.ParseInt(msg.Metadata.Get(eventstore.MetaPosition), 10, 64)
	if err != nil {
		// Without a position the event still applies; the checkpoint just does not move.
		log.Warn("event has no valid position metadata", "err", err)
		pos = 0
	}
	rec, err := events.Decode(msg.Payload)
	outcome := ""
	switch {
	case errors.Is(err, events.ErrUnknownType):
		log.Info("skipping event of unknown type", "type", rec.Type)
		outcome = outcomeUnknown
	case err != nil:
		log.Error("skipping undecodable event", "err", err)
		p.skip(ctx, msg, pos)
		return
	}

	// The apply finishes even when shutdown begins: it is short, and cutting it off
	// would only make the event come back.
	applyCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var changed bool
	err = pgx.BeginFunc(applyCtx, p.opts.Pool, func(tx pgx.Tx) error {
		var err error
		changed, err = tenants.Apply(applyCtx, tx, pos, rec)
		return err
	})
	if errors.Is(err, tenants.ErrInvalidEvent) {
		log.Error("skipping event that cannot be applied", "err", err)
		p.skip(ctx, msg, pos)
		return
	}
	if err != nil {
		log.Warn("apply event failed, will retry", "err", err)
		p.opts.Metrics.events.WithLabelValues(outcomeFailed).Inc()
		msg.Nack()
		return
	}
	msg.Ack()
	if outcome == "" {
		outcome = outcomeNoop
		if changed {
			outcome = outcomeApplied
		}
	}
	p.opts.Metrics.events.WithLabelValues(outcome).Inc()
	log.Debug("event applied", "type", rec.Type, "tenant_id", rec.TenantID, "version", rec.Version, "changed", changed)
	p.updateLag(applyCtx)
}

// skip acks an event that can never be applied, counting it and moving the checkpoint
// past it (as replay does), so the lag does not stay above zero because of it.
func (p *Projector) skip(ctx context.Context, msg *message.Message, pos int64) {
	p.opts.Metrics.events.WithLabelValues(outcomeInvalid).Inc()
	if pos > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := tenants.SaveCheckpoint(cctx, p.opts.Pool, pos); err != nil {
			p.opts.Log.Warn("checkpoint past skipped event failed", "err", err, "position", pos)
		}
	}
	msg.Ack()
}

func (p *Projector) lagLoop(ctx context.Context) {
	t := time.NewTicker(p.opts.LagInterval)
	defer t.Stop()
	for {
		p.updateLag(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Projector) updateLag(ctx context.Context) {
	lag, err := Lag(ctx, p.opts.Pool, p.opts.Store)
	if err != nil {
		if ctx.Err() == nil {
			p.opts.Log.Debug("projection lag unavailable", "err", err)
		}
		return
	}
	p.opts.Metrics.lag.Set(float64(lag))
}

// Lag is the event store head position minus the tenants checkpoint (never negative).
func Lag(ctx context.Context, pool *pgxpool.Pool, store *eventstore.Store) (int64, error) {
	head, err := store.Head(ctx)
	if err != nil {
		return 0, err
	}
	cp, err := tenants.Checkpoint(ctx, pool)
	if err != nil {
		return 0, err
	}
	return max(0, head-cp), nil
}
