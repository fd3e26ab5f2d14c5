package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/consumer/internal/amqpsub"
)

// deadLetterer publishes refused messages to dlx_exchange with a reason header and
// waits for the broker's confirm, so the original is acked only once the copy is safe.
// Poison messages are rare: one confirm channel, used under a mutex, is enough.
type deadLetterer struct {
	conn *rabbit.Conn
	mu   sync.Mutex
	ch   *amqp.Channel
}

func (d *deadLetterer) publish(ctx context.Context, tenantID string, msg *message.Message, reason string) error {
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
		d.ch = ch
	}
	headers := amqp.Table{
		rabbit.HeaderDeadLetterReason: reason,
		"x-original-queue":            rabbit.QueueName(tenantID),
	}
	if n := msg.Metadata.Get(amqpsub.MetaDeliveryCount); n != "" {
		headers["x-original-delivery-count"] = n
	}
	conf, err := d.ch.PublishWithDeferredConfirmWithContext(ctx, rabbit.DeadLetterExchange, rabbit.DLQName(tenantID), false, false, amqp.Publishing{
		Headers:      headers,
		MessageId:    msg.Metadata.Get(amqpsub.MetaMessageID),
		DeliveryMode: amqp.Persistent,
		Body:         msg.Payload,
	})
	if err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("dead letter confirm: %w", err)
	}
	if !ok {
		return errors.New("dead letter nacked by broker")
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
