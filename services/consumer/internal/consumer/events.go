package consumer

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/tracing"
)

// replayBatch is how many events one ReadAll call returns during the initial fold.
const replayBatch = 1000

// runEvents rebuilds desired state from the whole event store, then follows the events
// outbox from the head it saw before the replay. Replay and subscription may overlap;
// Apply ignores versions already seen.
func (s *Service) runEvents(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for {
		err := s.startAtHead(ctx)
		if err == nil {
			err = s.replay(ctx)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("replaying tenant events failed, retrying", "err", err, "retry_in", backoff)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	s.poke()

	for ctx.Err() == nil {
		if err := s.follow(ctx); err != nil {
			s.log.Warn("tenant events subscription failed, restarting", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
		}
	}
}

// startAtHead creates this process's consumer group at the outbox head before the
// replay reads the event store (see eventstore.StartGroupAtHead).
func (s *Service) startAtHead(ctx context.Context) error {
	return eventstore.StartGroupAtHead(ctx, s.d.DB, s.d.Group)
}

// forgetGroup closes the events subscriber and deletes this process's offsets row on
// graceful shutdown; the next process uses a new group. A crashed process leaves its
// small row behind (harmless: nothing reads it again).
func (s *Service) forgetGroup(ctx context.Context) {
	if c, ok := s.d.Subscriber.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			s.log.Warn("closing the events subscriber", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := eventstore.DeleteGroup(ctx, s.d.DB, s.d.Group); err != nil {
		s.log.Warn("could not delete the events consumer group", "group", s.d.Group, "err", err)
	}
}

func (s *Service) replay(ctx context.Context) error {
	var after int64
	n := 0
	for {
		batch, err := s.d.Events.ReadAll(ctx, after, replayBatch)
		if err != nil {
			return err
		}
		for _, ev := range batch {
			s.apply(ev.Recorded)
			after = ev.Position
		}
		n += len(batch)
		if len(batch) < replayBatch {
			s.log.Info("desired state rebuilt from the event store", "events", n, "tenants", len(s.state.Snapshot()))
			return nil
		}
	}
}

func (s *Service) follow(ctx context.Context) error {
	msgs, err := s.d.Subscriber.Subscribe(ctx, events.Topic)
	if err != nil {
		return err
	}
	s.eventsLive.Store(true)
	defer s.eventsLive.Store(false)
	for msg := range msgs {
		rec, err := events.Decode(msg.Payload)
		if err != nil && !errors.Is(err, events.ErrUnknownType) {
			s.m.eventsSkipped.WithLabelValues("malformed").Inc()
			s.log.Error("skipping malformed tenant event", "event_uuid", msg.UUID, "err", err)
			msg.Ack()
			continue
		}
		span := noSpan
		if tracing.Enabled() {
			// The append put its trace context in the event's metadata: applying the
			// event joins the trace of the request that caused it.
			_, span = tracing.Tracer().Start(tracing.ExtractMap(ctx, msg.Metadata), "apply "+rec.Type,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					attribute.String(eventstore.MetaTenantID, rec.TenantID),
					attribute.Int(eventstore.MetaVersion, rec.Version),
				))
		}
		changed := s.apply(rec)
		if changed {
			s.poke()
		}
		msg.Ack()
		span.SetAttributes(attribute.Bool("mtm.desired_state_changed", changed))
		span.End()
	}
	if ctx.Err() == nil {
		return errors.New("subscription closed")
	}
	return nil
}

// apply folds one event into desired state and reports whether it changed anything.
func (s *Service) apply(rec events.Recorded) bool {
	changed, err := s.state.Apply(rec)
	if errors.Is(err, events.ErrUnknownType) {
		s.m.eventsSkipped.WithLabelValues("unknown_type").Inc()
		s.log.Debug("skipping unknown tenant event", "type", rec.Type, "tenant_id", rec.TenantID)
		return false
	}
	if changed {
		s.m.eventsApplied.Inc()
		s.log.Debug("tenant event applied", "type", rec.Type, "tenant_id", rec.TenantID, "version", rec.Version)
	}
	return changed
}
