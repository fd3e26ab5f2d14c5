package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
)

// errUnroutable: the broker returned the dead letter (no DLQ bound to its routing key).
var errUnroutable = errors.New("dead letter unroutable")

// errDLQRefused: the broker nacked the dead letter, which is what a DLQ at its length
// bound (overflow reject-publish) does. The original stays unacked and is retried, so a
// full DLQ holds poison messages back in the tenant's own queue instead of losing them.
var errDLQRefused = errors.New("dead letter refused by the broker (DLQ full?)")

// deadLetterer publishes refused messages to dlx_exchange with a reason header and
// waits for the broker's confirm, so the original is acked only once the copy is safe.
// Poison messages are rare: one confirm channel, used under a mutex, is enough.
type deadLetterer struct {
	conn *rabbit.Conn
	// declare re-declares the tenant's topology after a copy came back unroutable
	// (DLQ deleted by hand); it must refuse tenants that are no longer live.
	declare func(tenantID string) error
	// published is told of every tenant whose DLQ just received a dead letter (the
	// archiver picks it up at once); may be nil.
	published func(tenantID string)
	mu        sync.Mutex
	ch        *amqp.Channel
	returns   chan amqp.Return
}

// deadLetter is one dead-lettering of a message: built once, so every publish attempt
// of it (retries while the broker is away) carries the same identity.
type deadLetter struct {
	reason string // "code: detail"
	// id is unique per dead-lettering (header x-dead-letter-id): the archive counts a
	// DLQ delivery seen twice once.
	id string
	// messageID is the original's message_id, or a fresh UUID when it had none, so
	// the archived row (and a redrive of it) has a stable id.
	messageID string
	at        time.Time
}

func newDeadLetter(msg *message.Message, reason string) deadLetter {
	id := msg.Metadata.Get(amqpsub.MetaMessageID)
	if id == "" {
		id = uuid.NewString()
	}
	return deadLetter{reason: reason, id: uuid.NewString(), messageID: id, at: time.Now().UTC()}
}

func (d *deadLetterer) publish(ctx context.Context, tenantID string, msg *message.Message, dl deadLetter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil || d.ch.IsClosed() {
		ch, err := d.conn.Channel()
		if err != nil {
			return fmt.Errorf("dead-letter channel: %w", err)
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return fmt.Errorf("dead-letter confirm mode: %w", err)
		}
		// The client hands a basic.return to this channel before it resolves the
		// publish's confirm (same frame order as the broker sent), so after the
		// confirm a return is already waiting here. One publish at a time, so the
		// buffer never fills (a full one would stall the connection's reader).
		d.ch, d.returns = ch, ch.NotifyReturn(make(chan amqp.Return, 4))
	}
	// A return left over from an abandoned publish must not be taken for this one.
	for drained := false; !drained; {
		select {
		case <-d.returns:
		default:
			drained = true
		}
	}
	headers := amqp.Table{
		rabbit.HeaderDeadLetterReason: dl.reason,
		headerDeadLetterID:            dl.id,
		headerDeadLetteredAt:          dl.at.Format(time.RFC3339Nano),
		"x-original-queue":            rabbit.QueueName(tenantID),
	}
	if n := msg.Metadata.Get(amqpsub.MetaDeliveryCount); n != "" {
		headers["x-original-delivery-count"] = n
	}
	pub := amqp.Publishing{
		Headers:      headers,
		MessageId:    dl.messageID,
		DeliveryMode: amqp.Persistent,
		Body:         msg.Payload,
	}
	if ts, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(amqpsub.MetaTimestamp)); err == nil {
		pub.Timestamp = ts // the producer's, so a redrive keeps measuring lag from it
	}
	conf, err := d.ch.PublishWithDeferredConfirmWithContext(ctx, rabbit.DeadLetterExchange, rabbit.DLQName(tenantID), true, false, pub)
	if err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("dead letter confirm: %w", err)
	}
	if !ok {
		return errDLQRefused
	}
	// mandatory=true: an unroutable copy is confirmed too, but returned first.
	select {
	case r, returned := <-d.returns:
		if !returned {
			return errors.New("dead-letter channel closed")
		}
		if err := d.declare(tenantID); err != nil {
			return fmt.Errorf("%w (%s); declaring the tenant's queues again: %w", errUnroutable, r.ReplyText, err)
		}
		return fmt.Errorf("%w (%s); the tenant's queues were declared again", errUnroutable, r.ReplyText)
	default:
	}
	if d.published != nil {
		d.published(tenantID)
	}
	return nil
}

func (d *deadLetterer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch != nil {
		_ = d.ch.Close()
		d.ch = nil
	}
}
