// Package amqpsub is a watermill message.Subscriber for RabbitMQ queues that keeps a
// prefetch window of deliveries in flight per consumer.
//
// watermill-amqp's subscription hands over one message and waits for its ack before
// the next, so a consumer's throughput is one message per commit. Here every delivery
// is emitted as soon as it arrives (up to Prefetch unacked) and acked independently,
// so many deliveries of one consumer can share a group commit. Headers of any AMQP type
// (x-delivery-count, x-death) are tolerated: they are rendered as strings.
package amqpsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Metadata keys set on emitted messages.
const (
	// MetaMessageID is the AMQP message_id property ("" when the publisher set none).
	MetaMessageID = "amqp_message_id"
	// MetaDeliveryCount is the quorum queue's x-delivery-count (how often it was returned).
	MetaDeliveryCount = "x-delivery-count"
	// MetaRedelivered is "true" when the broker flagged the delivery as redelivered.
	MetaRedelivered = "amqp_redelivered"
	// MetaReceivedAt is when the delivery arrived, RFC 3339 with nanoseconds.
	MetaReceivedAt = "received_at"
	// MetaTimestamp is the AMQP timestamp property (when the producer sent it, whole
	// seconds), RFC 3339; absent when the producer set none.
	MetaTimestamp = "amqp_timestamp"
)

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("subscriber closed")

// ChannelSource opens AMQP channels; *rabbit.Conn implements it.
type ChannelSource interface {
	Channel() (*amqp.Channel, error)
}

// Config tunes a Subscriber.
type Config struct {
	// Sources are the connections channels are spread over (round robin), because a
	// connection carries at most channel_max (default 2047) channels.
	Sources []ChannelSource
	// Prefetch is the basic.qos window per consumer (unacked deliveries in flight).
	Prefetch int
	// TagPrefix starts every consumer tag, so an operator can tell our consumers apart.
	TagPrefix string
	// AckDelay is how long a settled delivery's ack may wait for later ones to share
	// one multiple ack (0: send as soon as the walk stops). Acks never delay storing.
	AckDelay time.Duration
	Log      *slog.Logger
}

// Subscriber implements message.Subscriber over Config.Sources. The topic passed to
// Subscribe is the queue name. Each Subscribe call is one AMQP consumer on its own channel.
type Subscriber struct {
	cfg     Config
	next    atomic.Uint64
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // subscription goroutines
}

var _ message.Subscriber = (*Subscriber)(nil)

// New returns a Subscriber; it dials nothing itself.
func New(cfg Config) (*Subscriber, error) {
	if len(cfg.Sources) == 0 {
		return nil, errors.New("amqpsub: no connection sources")
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 128
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Subscriber{cfg: cfg, closing: make(chan struct{})}, nil
}

// Subscribe starts one consumer on queue. The returned channel emits every delivery at
// once; Ack acks it, Nack rejects it with requeue (the quorum queue counts that and
// dead-letters after its delivery limit). Acks are sent to the broker coalesced into
// multiple acks (see settle), each as soon as every earlier delivery is settled.
//
// When ctx ends the consumer is cancelled (basic.cancel: the broker stops sending and
// the consumer count drops at once), deliveries already received are still emitted, and
// the channel is closed only after every emitted message was acked or nacked, so
// stopping a consumer never returns in-flight work to the queue. The output closes then.
// Close abandons unacknowledged messages instead: closing the AMQP channel returns them.
// If the channel or connection dies, the output closes; the caller subscribes again.
func (s *Subscriber) Subscribe(ctx context.Context, queue string) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	n := s.next.Add(1)
	src := s.cfg.Sources[int(n%uint64(len(s.cfg.Sources)))]
	ch, err := src.Channel()
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", queue, err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("subscribe %s: qos: %w", queue, err)
	}
	tag := s.cfg.TagPrefix + "-" + watermill.NewShortUUID()
	deliveries, err := ch.ConsumeWithContext(context.WithoutCancel(ctx), queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("subscribe %s: consume: %w", queue, err)
	}
	out := make(chan *message.Message)
	sub := &subscription{
		s: s, ch: ch, tag: tag, queue: queue, out: out,
		chClosed: ch.NotifyClose(make(chan *amqp.Error, 1)),
		pending:  make(chan emitted, s.cfg.Prefetch),
		settled:  make(chan struct{}),
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		sub.settle()
	}()
	go func() {
		defer s.wg.Done()
		sub.run(ctx, deliveries)
	}()
	return out, nil
}

// Close abandons every subscription: their channels close and unacked deliveries go
// back to their queues. It waits for the subscription goroutines to end.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
}

type subscription struct {
	s        *Subscriber
	ch       *amqp.Channel
	tag      string
	queue    string
	out      chan *message.Message
	chClosed chan *amqp.Error
	// pending carries every emitted delivery, in delivery-tag order, to the settler.
	// At most Prefetch deliveries are unacked, so a buffer of Prefetch never blocks.
	pending chan emitted
	settled chan struct{} // closed when the settler has returned
}

type emitted struct {
	msg *message.Message
	tag uint64
}

func (sub *subscription) run(ctx context.Context, deliveries <-chan amqp.Delivery) {
	defer close(sub.out)
	defer func() { _ = sub.ch.Close() }()
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				sub.waitSettled()
				return
			}
			if !sub.emit(d) {
				return
			}
		case <-ctx.Done():
			if err := sub.ch.Cancel(sub.tag, false); err != nil {
				sub.s.cfg.Log.Warn("cancel consumer", "queue", sub.queue, "err", err)
			}
			// Deliveries the client already buffered still belong to us: process them.
			for d := range deliveries {
				if !sub.emit(d) {
					return
				}
			}
			sub.waitSettled()
			sub.linger()
			return
		case <-sub.s.closing:
			return
		}
	}
}

// emit hands d to the reader and queues it for the settler; false means Close was called.
func (sub *subscription) emit(d amqp.Delivery) bool {
	msg := toMessage(d)
	select {
	case sub.pending <- emitted{msg: msg, tag: d.DeliveryTag}:
	case <-sub.s.closing:
		return false
	}
	select {
	case sub.out <- msg:
		return true
	case <-sub.s.closing:
		return false
	}
}

// settle turns the messages' Ack/Nack into broker settlements, in delivery-tag order.
// On a quorum queue every basic.ack is a command in the Raft log, so one ack per
// delivery costs the broker several times the CPU of the message itself. Acked
// messages are therefore coalesced: the settler walks the deliveries in order and
// sends one multiple=true ack for the longest settled prefix. It sends it once the
// walk stops at a delivery that is not settled yet (or runs out of emitted ones) and
// either AckDelay has passed since the oldest unsent ack or a quarter of the prefetch
// window is waiting; at low rates the delay lets one ack carry several deliveries.
// A nack is sent on its own, after acking everything before it, so a multiple ack
// never covers an unsettled or nacked delivery. A handler that settles a batch in
// reverse order lets the whole batch go out as a single ack.
func (sub *subscription) settle() {
	defer close(sub.settled)
	var (
		ackTag  uint64 // highest delivery acked by its handler, not yet sent (0: none)
		unsent  int    // deliveries that ack would settle
		timer   = time.NewTimer(time.Hour)
		timerC  <-chan time.Time
		maxHeld = max(1, sub.s.cfg.Prefetch/4)
	)
	timer.Stop()
	defer timer.Stop()
	flush := func() {
		if timerC != nil {
			timer.Stop()
			timerC = nil
		}
		if ackTag == 0 {
			return
		}
		if err := sub.ch.Ack(ackTag, true); err != nil {
			// The channel is gone: the broker returns the deliveries itself.
			sub.s.cfg.Log.Warn("settle deliveries", "queue", sub.queue, "err", err)
		}
		ackTag, unsent = 0, 0
	}
	acked := func(tag uint64) {
		ackTag = tag
		unsent++
	}
	// hold is called when the walk has to wait: send now, or arm the delay.
	hold := func() {
		switch {
		case ackTag == 0:
		case sub.s.cfg.AckDelay <= 0 || unsent >= maxHeld:
			flush()
		case timerC == nil:
			timer.Reset(sub.s.cfg.AckDelay)
			timerC = timer.C
		}
	}
	nack := func(tag uint64) {
		flush()
		if err := sub.ch.Nack(tag, false, true); err != nil {
			sub.s.cfg.Log.Warn("nack delivery", "queue", sub.queue, "err", err)
		}
	}
	for {
		var e emitted
		var ok bool
		select {
		case e, ok = <-sub.pending:
		default:
			// Everything emitted so far is settled.
			hold()
			for received := false; !received; {
				select {
				case e, ok = <-sub.pending:
					received = true
				case <-timerC:
					timerC = nil
					flush()
				case <-sub.s.closing:
					return
				}
			}
		}
		if !ok {
			flush()
			return
		}
		select {
		case <-e.msg.Acked():
			acked(e.tag)
			continue
		case <-e.msg.Nacked():
			nack(e.tag)
			continue
		default:
		}
		// The oldest delivery is still being processed: settle the prefix before it.
		hold()
		for settled := false; !settled; {
			select {
			case <-e.msg.Acked():
				acked(e.tag)
				settled = true
			case <-e.msg.Nacked():
				nack(e.tag)
				settled = true
			case <-timerC:
				timerC = nil
				flush()
			case amqpErr := <-sub.chClosed:
				// The channel is gone; the broker already returned the deliveries.
				if amqpErr != nil {
					sub.s.cfg.Log.Warn("consumer channel closed by broker", "queue", sub.queue, "err", amqpErr)
				}
				return
			case <-sub.s.closing:
				return
			}
		}
	}
}

// settleLinger keeps a cancelled consumer's channel open briefly after its last ack.
// RabbitMQ quorum queues (verified on 3.10) apply acks asynchronously and return every
// unsettled message when the channel closes, counting it in x-delivery-count; closing
// right after the last ack can overtake acks the broker has not applied yet.
const settleLinger = 300 * time.Millisecond

func (sub *subscription) linger() {
	t := time.NewTimer(settleLinger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-sub.s.closing:
	}
}

// waitSettled waits until every emitted message is settled and its settlement sent,
// or Close abandons them.
func (sub *subscription) waitSettled() {
	close(sub.pending)
	select {
	case <-sub.settled:
	case <-sub.s.closing:
	}
}

// toMessage converts a delivery, rendering every header as a string.
func toMessage(d amqp.Delivery) *message.Message {
	uuid := d.MessageId
	if uuid == "" {
		uuid = watermill.NewUUID()
	}
	msg := message.NewMessage(uuid, d.Body)
	for k, v := range d.Headers {
		msg.Metadata.Set(k, headerString(v))
	}
	msg.Metadata.Set(MetaMessageID, d.MessageId)
	msg.Metadata.Set(MetaRedelivered, strconv.FormatBool(d.Redelivered))
	msg.Metadata.Set(MetaReceivedAt, time.Now().UTC().Format(time.RFC3339Nano))
	if !d.Timestamp.IsZero() {
		msg.Metadata.Set(MetaTimestamp, d.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	return msg
}

func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}
