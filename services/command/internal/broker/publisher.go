package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/tracing"
)

// ErrNoQueue means the broker returned the message as unroutable: the tenant's
// queue does not exist (any more).
var ErrNoQueue = errors.New("tenant queue does not exist")

// ErrInvalidMessage means a property of the message cannot be carried by AMQP (a short
// string over 255 bytes). Nothing was sent: amqp091 would fail the frame and close the
// whole connection, which every other tenant's publishes share.
var ErrInvalidMessage = errors.New("message properties cannot be published")

// ErrUnconfirmed means the message was sent but its confirm never arrived (timeout, or
// the channel or connection closed first): the broker may or may not have it. It also
// matches ErrUnavailable; callers that answer "nothing was published" must check it
// first.
var ErrUnconfirmed = errors.New("publish outcome unknown")

// maxShortString is the AMQP limit on property strings (message id, correlation id).
const maxShortString = 255

// Message is one tenant message to publish.
type Message struct {
	ID            string
	TenantID      string
	Body          []byte
	CorrelationID string
}

// PublisherOptions tune a Publisher.
type PublisherOptions struct {
	// Channels is the number of confirm-mode channels requests are spread over
	// (default 8). Each carries many publishes in flight at once.
	Channels int
	// ConfirmTimeout bounds the wait for the broker's confirm (default 5s).
	ConfirmTimeout time.Duration
	// Registerer receives the publisher's metrics (optional).
	Registerer prometheus.Registerer
}

// Publisher publishes with publisher confirms without serialising requests: a
// small pool of confirm-mode channels on a dedicated connection, each with any
// number of publishes awaiting their confirm. Channels lost with the connection are
// reopened on the next publish.
type Publisher struct {
	conn    *rabbit.Conn
	log     *slog.Logger
	slots   []*slot
	next    atomic.Uint32
	timeout time.Duration

	published *prometheus.CounterVec
	latency   prometheus.Histogram
}

// NewPublisher builds a publisher on conn, which should serve nothing else so that
// consumers' flow control never slows the ingest path.
func NewPublisher(conn *rabbit.Conn, log *slog.Logger, opts PublisherOptions) *Publisher {
	if opts.Channels <= 0 {
		opts.Channels = 8
	}
	if opts.ConfirmTimeout <= 0 {
		opts.ConfirmTimeout = 5 * time.Second
	}
	p := &Publisher{
		conn:    conn,
		log:     log,
		timeout: opts.ConfirmTimeout,
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "command_messages_published_total",
			Help: "Messages published through the API, by outcome (confirmed, returned, unavailable, unconfirmed, invalid).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "command_publish_confirm_seconds",
			Help:    "Time from publish to the broker's confirm.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for range opts.Channels {
		p.slots = append(p.slots, &slot{})
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(p.published, p.latency)
	}
	return p
}

// Publish sends m to the tenant's queue through the default exchange (persistent,
// mandatory) and returns once the broker confirmed it: nil on ack, ErrNoQueue when
// the queue is missing, ErrInvalidMessage before sending anything AMQP cannot carry,
// ErrUnavailable on nack or a broker outage, ErrUnconfirmed (also ErrUnavailable) when
// it was sent but the confirm is unknown.
func (p *Publisher) Publish(ctx context.Context, m Message) (err error) {
	var headers amqp.Table
	if tracing.Enabled() {
		// A producer span, whose context rides in the message headers (traceparent): the
		// consumer's delivery span becomes its child.
		queue := rabbit.QueueName(m.TenantID)
		var span trace.Span
		ctx, span = tracing.Tracer().Start(ctx, "publish "+queue, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				semconv.MessagingSystemRabbitMQ,
				semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(queue),
				semconv.MessagingMessageID(m.ID),
			))
		defer func() { tracing.End(span, err) }()
		headers = tracing.InjectAMQP(ctx, nil)
	}
	if err := m.check(); err != nil {
		p.published.WithLabelValues("invalid").Inc()
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	s := p.slots[p.next.Add(1)%uint32(len(p.slots))]
	cc, err := s.get(p.conn)
	if err != nil {
		p.published.WithLabelValues("unavailable").Inc()
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer cc.release()
	start := time.Now()
	dc, err := cc.ch.PublishWithDeferredConfirmWithContext(ctx, "", rabbit.QueueName(m.TenantID), true, false, amqp.Publishing{
		MessageId:     m.ID,
		ContentType:   "application/json",
		DeliveryMode:  amqp.Persistent,
		Timestamp:     start.UTC(),
		CorrelationId: m.CorrelationID,
		Headers:       headers,
		Body:          m.Body,
	})
	if err != nil {
		s.drop(cc)
		p.published.WithLabelValues("unavailable").Inc()
		return fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		p.published.WithLabelValues("unconfirmed").Inc()
		return fmt.Errorf("%w: %w: no confirm within %s: %w", ErrUnconfirmed, ErrUnavailable, p.timeout, ctx.Err())
	}
	p.latency.Observe(time.Since(start).Seconds())
	if !dc.Acked() {
		if cc.isClosed() {
			// The channel closed before the confirm: the broker may have the message.
			p.published.WithLabelValues("unconfirmed").Inc()
			return fmt.Errorf("%w: %w: channel closed before the confirm of message %s", ErrUnconfirmed, ErrUnavailable, m.ID)
		}
		// A channel opened while a quorum queue's leader was moving (its node just
		// died) can go on nacking every publish to it for a minute (RabbitMQ 3.10);
		// a fresh channel finds the new leader. The slot gets one for the next
		// publish, and this one closes once its other publishes have their confirms.
		s.retire(cc)
		p.published.WithLabelValues("unavailable").Inc()
		return fmt.Errorf("%w: broker nacked message %s", ErrUnavailable, m.ID)
	}
	if cc.returned(m.ID) {
		p.published.WithLabelValues("returned").Inc()
		return ErrNoQueue
	}
	p.published.WithLabelValues("confirmed").Inc()
	return nil
}

// check refuses what the AMQP encoder would fail on (and so close the connection).
func (m Message) check() error {
	if len(m.ID) > maxShortString {
		return fmt.Errorf("%w: message id is %d bytes (at most %d)", ErrInvalidMessage, len(m.ID), maxShortString)
	}
	if len(m.CorrelationID) > maxShortString {
		return fmt.Errorf("%w: correlation id is %d bytes (at most %d)", ErrInvalidMessage, len(m.CorrelationID), maxShortString)
	}
	return nil
}

// Close closes the channels; call it after the HTTP server stopped taking requests.
func (p *Publisher) Close() {
	for _, s := range p.slots {
		s.mu.Lock()
		if s.cur != nil {
			_ = s.cur.ch.Close()
			<-s.cur.done
			s.cur = nil
		}
		s.mu.Unlock()
	}
}

// slot holds one confirm channel, reopened after it closes.
type slot struct {
	mu  sync.Mutex
	cur *confirmChannel
}

// get returns the slot's channel, opening one if it has none, counted as in use
// until the caller's release.
func (s *slot) get(conn *rabbit.Conn) (*confirmChannel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.isClosed() {
		cc, err := openConfirmChannel(conn)
		if err != nil {
			return nil, err
		}
		s.cur = cc
	}
	s.cur.inUse.Add(1)
	return s.cur, nil
}

// retire takes cc out of the slot (the next publish opens a fresh channel) and closes
// it once no publish uses it, so the confirms of its other publishes still arrive.
func (s *slot) retire(cc *confirmChannel) {
	s.mu.Lock()
	if s.cur == cc {
		s.cur = nil
	}
	s.mu.Unlock()
	cc.retired.Store(true)
	cc.closeIfUnused()
}

// drop forgets cc after a failed publish, closing it so its goroutine ends.
func (s *slot) drop(cc *confirmChannel) {
	s.mu.Lock()
	if s.cur == cc {
		s.cur = nil
	}
	s.mu.Unlock()
	_ = cc.ch.Close()
}

// confirmChannel is a confirm-mode channel plus the goroutine that owns its returns.
//
// Ordering argument: the broker sends basic.return before the basic.ack of the same
// message, and amqp091 dispatches both from one reader goroutine. The returns channel
// is unbuffered, so the reader cannot get to the ack before loop has taken the
// return; loop records it before serving the next query. A waiter that asks after
// its ack therefore always sees its return.
type confirmChannel struct {
	ch      *amqp.Channel
	queries chan returnQuery
	done    chan struct{}

	inUse     atomic.Int64 // publishes between get and release
	retired   atomic.Bool  // out of its slot: close when unused
	closeOnce sync.Once
}

// release ends one publish's use of cc.
func (cc *confirmChannel) release() {
	cc.inUse.Add(-1)
	cc.closeIfUnused()
}

// closeIfUnused closes a retired channel that no publish uses any more. Both retire
// and the last release call it, so whichever comes second closes the channel.
func (cc *confirmChannel) closeIfUnused() {
	if cc.retired.Load() && cc.inUse.Load() == 0 {
		cc.closeOnce.Do(func() { _ = cc.ch.Close() })
	}
}

type returnQuery struct {
	id    string
	reply chan bool
}

// maxRemembered bounds returns nobody asked about (their publishers timed out).
const maxRemembered = 4096

func openConfirmChannel(conn *rabbit.Conn) (*confirmChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable confirms: %w", err)
	}
	cc := &confirmChannel{ch: ch, queries: make(chan returnQuery), done: make(chan struct{})}
	returns := ch.NotifyReturn(make(chan amqp.Return))
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go cc.loop(returns, closed)
	return cc, nil
}

// loop ends when the channel closes (amqp091 closes returns and closed then).
func (cc *confirmChannel) loop(returns <-chan amqp.Return, closed <-chan *amqp.Error) {
	defer close(cc.done)
	seen := map[string]struct{}{}
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				return
			}
			if len(seen) >= maxRemembered {
				clear(seen)
			}
			seen[r.MessageId] = struct{}{}
		case q := <-cc.queries:
			_, ok := seen[q.id]
			delete(seen, q.id)
			q.reply <- ok
		case <-closed: //nolint:errcheck // the close reason is logged by rabbit.Conn
			return
		}
	}
}

func (cc *confirmChannel) returned(id string) bool {
	q := returnQuery{id: id, reply: make(chan bool, 1)}
	select {
	case cc.queries <- q:
		return <-q.reply
	case <-cc.done:
		return false
	}
}

func (cc *confirmChannel) isClosed() bool {
	select {
	case <-cc.done:
		return true
	default:
		return cc.ch.IsClosed()
	}
}
