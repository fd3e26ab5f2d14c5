// Package eventstore is the append-only tenant event store in Postgres, with the
// watermill-sql outbox: events are stored and published in one transaction.
package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/tracing"
)

// ErrConcurrency means another command appended to the stream at the same version first.
var ErrConcurrency = errors.New("stream version conflict")

// ErrCommitUnknown means the commit failed in a way that does not say whether it took
// effect (e.g. the connection dropped during COMMIT): callers must not undo side effects.
var ErrCommitUnknown = errors.New("append commit outcome unknown")

// Metadata keys on published watermill messages.
const (
	MetaEventType     = "event_type"
	MetaTenantID      = "tenant_id"
	MetaVersion       = "version"
	MetaPosition      = "position"
	MetaCorrelationID = "correlation_id"
)

// Stored is an event with its global position in the store.
type Stored struct {
	Position int64
	events.Recorded
}

// Store appends and reads events.
type Store struct {
	db  *sql.DB
	log watermill.LoggerAdapter
}

// New returns a store on db (a database/sql handle, see postgres.OpenDB).
func New(db *sql.DB, log watermill.LoggerAdapter) *Store {
	return &Store{db: db, log: log}
}

// Append stores envs (one stream, contiguous versions) and publishes them to
// events.Topic in one transaction. extra, if set, runs in the same transaction
// (e.g. claiming a unique name); its error aborts everything. A concurrent append at
// the same version returns ErrConcurrency and writes nothing.
func (s *Store) Append(ctx context.Context, envs []events.Envelope, extra func(ctx context.Context, tx *sql.Tx) error) (_ []int64, err error) {
	if len(envs) == 0 {
		return nil, nil
	}
	if tracing.Enabled() {
		var span trace.Span
		ctx, span = tracing.Tracer().Start(ctx, "eventstore append", trace.WithAttributes(
			attribute.String(MetaTenantID, envs[0].TenantID),
			attribute.String(MetaEventType, envs[0].Type),
			attribute.Int(MetaVersion, envs[len(envs)-1].Version),
		))
		defer func() { tracing.End(span, err) }()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin append: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	if extra != nil {
		if err := extra(ctx, tx); err != nil {
			return nil, err
		}
	}
	pub, err := wsql.NewPublisher(tx, wsql.PublisherConfig{SchemaAdapter: wsql.DefaultPostgreSQLSchema{}}, s.log)
	if err != nil {
		return nil, fmt.Errorf("outbox publisher: %w", err)
	}
	positions := make([]int64, 0, len(envs))
	msgs := make([]*message.Message, 0, len(envs))
	for _, env := range envs {
		raw, err := env.Marshal()
		if err != nil {
			return nil, err
		}
		var pos int64
		err = tx.QueryRowContext(ctx, `
			INSERT INTO event_store (stream_id, version, event_id, event_type, payload, occurred_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING position`,
			env.TenantID, env.Version, env.Metadata.EventID, env.Type, raw, env.Metadata.OccurredAt).Scan(&pos)
		if postgres.IsUniqueViolation(err, "event_store_stream_id_version_key") {
			return nil, ErrConcurrency
		}
		if err != nil {
			return nil, fmt.Errorf("insert event %s v%d: %w", env.TenantID, env.Version, err)
		}
		positions = append(positions, pos)
		msg := message.NewMessage(env.Metadata.EventID, raw)
		msg.Metadata.Set(MetaEventType, env.Type)
		msg.Metadata.Set(MetaTenantID, env.TenantID)
		msg.Metadata.Set(MetaVersion, strconv.Itoa(env.Version))
		msg.Metadata.Set(MetaPosition, strconv.FormatInt(pos, 10))
		msg.Metadata.Set(MetaCorrelationID, env.Metadata.CorrelationID)
		// The append's span context travels with the event (traceparent), so a
		// subscriber's reaction joins the trace of the request that caused it.
		tracing.InjectMap(ctx, msg.Metadata)
		msgs = append(msgs, msg)
	}
	// Taken last, just before the outbox insert, so an append never holds it while it
	// waits on another transaction (a name or version conflict): no deadlock, and the
	// serialised section is only the insert and the commit.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, appendLockKey); err != nil {
		return nil, fmt.Errorf("lock outbox: %w", err)
	}
	if err := pub.Publish(events.Topic, msgs...); err != nil {
		return nil, fmt.Errorf("publish to outbox: %w", err)
	}
	if err := tx.Commit(); err != nil {
		if postgres.IsUniqueViolation(err, "event_store_stream_id_version_key") {
			return nil, ErrConcurrency
		}
		return nil, fmt.Errorf("commit append: %w: %w", ErrCommitUnknown, err)
	}
	return positions, nil
}

// Load returns a stream's events in version order. Events of unknown types are
// returned with a nil Event so callers can skip them.
func (s *Store) Load(ctx context.Context, streamID string) ([]Stored, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT position, payload FROM event_store WHERE stream_id = $1 ORDER BY version`, streamID)
	if err != nil {
		return nil, fmt.Errorf("load stream %s: %w", streamID, err)
	}
	return scan(rows)
}

// ReadAll returns up to limit events with position > after, in position order (replay).
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]Stored, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT position, payload FROM event_store WHERE position > $1 ORDER BY position LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", after, err)
	}
	return scan(rows)
}

// Head returns the highest position in the store (0 when empty).
func (s *Store) Head(ctx context.Context) (int64, error) {
	var pos int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(max(position), 0) FROM event_store`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("event store head: %w", err)
	}
	return pos, nil
}

func scan(rows *sql.Rows) ([]Stored, error) {
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		var pos int64
		var raw []byte
		if err := rows.Scan(&pos, &raw); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		rec, err := events.Decode(raw)
		if err != nil && !errors.Is(err, events.ErrUnknownType) {
			return nil, fmt.Errorf("event at position %d: %w", pos, err)
		}
		out = append(out, Stored{Position: pos, Recorded: rec})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// NewSubscriber subscribes a consumer group to events.Topic, reading the outbox in offset
// order (outboxSchema). Polling every 20ms keeps tenant spawn latency low; the query is an
// index probe, so idle cost is small.
func NewSubscriber(db *sql.DB, consumerGroup string, log watermill.LoggerAdapter) (*wsql.Subscriber, error) {
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:  consumerGroup,
		PollInterval:   20 * time.Millisecond,
		ResendInterval: 200 * time.Millisecond,
		RetryInterval:  time.Second,
		SchemaAdapter:  outboxSchema{wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: 100}},
		OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
	}, log)
	if err != nil {
		return nil, fmt.Errorf("event subscriber %s: %w", consumerGroup, err)
	}
	return sub, nil
}
