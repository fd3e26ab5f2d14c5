package rabbit

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Names of the AMQP topology (README "Producing over AMQP"). One place, so a rename is deliberate.
const (
	DeadLetterExchange = "dlx_exchange"
	// DeliveryLimit is how often a quorum queue redelivers a message before dead-lettering it.
	DeliveryLimit = 5
	// HeaderDeadLetterReason carries why a message was dead-lettered by a worker.
	HeaderDeadLetterReason = "x-dead-letter-reason"
)

// DLQPolicyName names the policy that bounds every tenant's DLQ (a policy, unlike a
// queue argument, applies to queues that already exist without redeclaring them).
const DLQPolicyName = "mtm-dlq-bound"

// DLQPattern matches every tenant DLQ and nothing else.
const DLQPattern = `^tenant_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_dlq$`

// DLQPolicy is the bound's definition: at maxLength messages the DLQ refuses new dead
// letters (overflow reject-publish nacks the publish) rather than dropping its oldest,
// so the consumer keeps a refused poison message unacked in the tenant's queue.
func DLQPolicy(maxLength int) map[string]any {
	return map[string]any{"max-length": maxLength, "overflow": "reject-publish"}
}

// QueueName is the tenant's work queue.
func QueueName(tenantID string) string { return "tenant_" + tenantID + "_queue" }

// DLQName is the tenant's dead-letter queue; its routing key on dlx_exchange is the same name.
func DLQName(tenantID string) string { return "tenant_" + tenantID + "_dlq" }

// ExchangeName is the tenant's own exchange: a fanout bound only to its work queue, the
// one exchange a tenant's broker account may publish to. It bears the queue's name
// (exchanges and queues are separate namespaces) because RabbitMQ checks a publish's
// write permission against the exchange, and through the default exchange that is
// "amq.default" whatever the routing key: a tenant granted it could write to every
// queue, so tenant accounts publish here instead.
func ExchangeName(tenantID string) string { return QueueName(tenantID) }

// UserName is the tenant's own broker account.
func UserName(tenantID string) string { return "tenant_" + tenantID }

// QueueArgs are the work queue's arguments: quorum, an explicit delivery limit, and
// dead-lettering through dlx_exchange to the tenant's DLQ.
func QueueArgs(tenantID string) amqp.Table {
	return amqp.Table{
		"x-queue-type":              "quorum",
		"x-delivery-limit":          int32(DeliveryLimit),
		"x-dead-letter-exchange":    DeadLetterExchange,
		"x-dead-letter-routing-key": DLQName(tenantID),
	}
}

// DeclareTenant declares dlx_exchange, the tenant's DLQ (bound to it), work queue and
// exchange (bound to the work queue). Idempotent: declaring again with the same
// arguments is a no-op.
func DeclareTenant(ch *amqp.Channel, tenantID string) error {
	if err := ch.ExchangeDeclare(DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", DeadLetterExchange, err)
	}
	dlq := DLQName(tenantID)
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("declare %s: %w", dlq, err)
	}
	if err := ch.QueueBind(dlq, dlq, DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", dlq, err)
	}
	q := QueueName(tenantID)
	if _, err := ch.QueueDeclare(q, true, false, false, false, QueueArgs(tenantID)); err != nil {
		return fmt.Errorf("declare %s: %w", q, err)
	}
	ex := ExchangeName(tenantID)
	if err := ch.ExchangeDeclare(ex, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", ex, err)
	}
	if err := ch.QueueBind(q, "", ex, false, nil); err != nil {
		return fmt.Errorf("bind %s to exchange %s: %w", q, ex, err)
	}
	return nil
}

// DeleteTenant deletes the tenant's exchange (first, so its producers are refused at
// once rather than silently unrouted), work queue and DLQ. Deleting a missing exchange
// or queue succeeds in RabbitMQ, so this is idempotent.
func DeleteTenant(ch *amqp.Channel, tenantID string) error {
	if err := ch.ExchangeDelete(ExchangeName(tenantID), false, false); err != nil {
		return fmt.Errorf("delete exchange %s: %w", ExchangeName(tenantID), err)
	}
	for _, q := range []string{QueueName(tenantID), DLQName(tenantID)} {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			return fmt.Errorf("delete %s: %w", q, err)
		}
	}
	return nil
}

// Inspect passively declares a queue and returns its message and consumer counts.
// A missing queue closes the channel with 404; the caller should use a throwaway channel.
func Inspect(ch *amqp.Channel, queue string) (amqp.Queue, error) {
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return amqp.Queue{}, fmt.Errorf("inspect %s: %w", queue, err)
	}
	return q, nil
}
