package rabbit

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

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

// QueueType is a RabbitMQ queue type a tenant's queues may have (QUEUE_TYPE,
// DLQ_QUEUE_TYPE).
type QueueType string

// The queue types a tenant's queues may have.
const (
	// Quorum queues are replicated (Raft) and have a broker-side delivery limit, but
	// each holds about 3 file handles and 77 KB of broker memory even when empty.
	Quorum QueueType = "quorum"
	// Classic queues hold no file handles while idle and about 28 KB; durable ones
	// with persistent messages survive a broker restart but live on one node only.
	Classic QueueType = "classic"
)

// ParseQueueType accepts "quorum" or "classic".
func ParseQueueType(s string) (QueueType, error) {
	switch t := QueueType(s); t {
	case Quorum, Classic:
		return t, nil
	}
	return "", fmt.Errorf("unknown queue type %q (want quorum or classic)", s)
}

// Topology is the queue types tenants are declared with. The command service (on
// create) and the consumer (on every start) both declare a tenant's queues, so both
// must build it from the same configuration: RabbitMQ refuses a declare whose
// arguments differ from the existing queue's.
type Topology struct {
	Queue QueueType // QUEUE_TYPE: the tenant's work queue
	DLQ   QueueType // DLQ_QUEUE_TYPE: the tenant's dead-letter queue
	// Replicas (QUEUE_REPLICAS) is the x-quorum-initial-group-size of the tenant's
	// quorum queues: how many cluster nodes hold a replica when the queue is created.
	// 0 leaves it to the broker (its quorum_cluster_size, 3 by default); the broker
	// caps it at the nodes it has.
	Replicas int
}

// MaxReplicas is the largest QUEUE_REPLICAS: quorum queues gain nothing from more
// members (each one more is Raft traffic on every publish).
const MaxReplicas = 7

// InitialGroupSizeArg is the queue argument Replicas sets.
const InitialGroupSizeArg = "x-quorum-initial-group-size"

// DefaultTopology is the configuration's default (QUEUE_TYPE=quorum,
// DLQ_QUEUE_TYPE=classic): the work queue keeps the broker's delivery limit, and the
// DLQ, a transit buffer the consumer archives into Postgres within seconds, costs no
// file handles.
var DefaultTopology = Topology{Queue: Quorum, DLQ: Classic}

// QueueArgs are the work queue's arguments for queue type qt: dead-lettering through
// dlx_exchange to the tenant's DLQ and, on a quorum queue, an explicit delivery limit
// (classic queues have none: RabbitMQ 3.x ignores x-delivery-limit on them).
func QueueArgs(qt QueueType, tenantID string) amqp.Table {
	args := amqp.Table{
		"x-queue-type":              string(qt),
		"x-dead-letter-exchange":    DeadLetterExchange,
		"x-dead-letter-routing-key": DLQName(tenantID),
	}
	if qt == Quorum {
		args["x-delivery-limit"] = int32(DeliveryLimit)
	}
	return args
}

// DLQArgs are the DLQ's arguments for queue type qt. The bound is a policy
// (DLQPolicyName), so that it reaches DLQs that exist already.
func DLQArgs(qt QueueType) amqp.Table { return amqp.Table{"x-queue-type": string(qt)} }

// withReplicas adds x-quorum-initial-group-size to a quorum queue's arguments when
// replicas is set (classic queues have one copy; the broker would ignore it).
func withReplicas(args amqp.Table, qt QueueType, replicas int) amqp.Table {
	if qt == Quorum && replicas > 0 {
		args[InitialGroupSizeArg] = int32(replicas)
	}
	return args
}

// queueArgs and dlqArgs are QueueArgs and DLQArgs with t's replica count.
func (t Topology) queueArgs(qt QueueType, tenantID string) amqp.Table {
	return withReplicas(QueueArgs(qt, tenantID), qt, t.Replicas)
}

func (t Topology) dlqArgs(qt QueueType) amqp.Table {
	return withReplicas(DLQArgs(qt), qt, t.Replicas)
}

// other is the queue type that is not qt.
func (qt QueueType) other() QueueType {
	if qt == Quorum {
		return Classic
	}
	return Quorum
}

// Declared says what type a tenant's queues have. A queue that existed with the other
// type keeps it (RabbitMQ cannot change a queue's type; it answers a declare with
// other arguments with PRECONDITION_FAILED): Queue or DLQ then differs from the
// Topology that was asked for. "" means the queue exists with arguments of neither
// type (declared by hand); it is used as it is.
//
// QueueReplicas and DLQReplicas are the x-quorum-initial-group-size a quorum queue
// was declared with (0: none, the broker's default). A quorum queue created under
// another QUEUE_REPLICAS keeps its value the same way: RabbitMQ refuses a redeclare
// with another one, and the argument only ever mattered when the queue was created.
type Declared struct {
	Queue, DLQ                 QueueType
	QueueReplicas, DLQReplicas int
}

// Kept lists the queues whose type or replica count differs from t (empty when all
// are as configured), for a log line.
func (d Declared) Kept(t Topology, tenantID string) []string {
	var kept []string
	for _, q := range []struct {
		name      string
		got, want QueueType
		replicas  int
	}{
		{QueueName(tenantID), d.Queue, t.Queue, d.QueueReplicas},
		{DLQName(tenantID), d.DLQ, t.DLQ, d.DLQReplicas},
	} {
		switch {
		case q.got != q.want:
			kept = append(kept, fmt.Sprintf("%s is %s", q.name, describe(q.got)))
		case q.got == Quorum && q.replicas != t.Replicas:
			kept = append(kept, fmt.Sprintf("%s keeps %s", q.name, describeReplicas(q.replicas)))
		}
	}
	return kept
}

func describeReplicas(n int) string {
	if n == 0 {
		return "the broker's default initial replica count"
	}
	return fmt.Sprintf("%d initial replicas", n)
}

func describe(qt QueueType) string {
	if qt == "" {
		return "of unknown arguments"
	}
	return string(qt)
}

// Opener opens a fresh channel; a refused declare closes the channel it ran on, so
// Declare needs a new one for its next step.
type Opener func() (*amqp.Channel, error)

// DeclareTenant declares dlx_exchange, the tenant's DLQ (bound to it), work queue and
// exchange (bound to the work queue) on ch, with t's queue types. It fails (with the
// broker's PRECONDITION_FAILED) when a queue exists with another type: tests and a
// brand-new tenant; services use Declare. Idempotent otherwise.
func (t Topology) DeclareTenant(ch *amqp.Channel, tenantID string) error {
	if err := ch.ExchangeDeclare(DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", DeadLetterExchange, err)
	}
	dlq := DLQName(tenantID)
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, t.dlqArgs(t.DLQ)); err != nil {
		return fmt.Errorf("declare %s: %w", dlq, err)
	}
	if err := ch.QueueBind(dlq, dlq, DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", dlq, err)
	}
	q := QueueName(tenantID)
	if _, err := ch.QueueDeclare(q, true, false, false, false, t.queueArgs(t.Queue, tenantID)); err != nil {
		return fmt.Errorf("declare %s: %w", q, err)
	}
	return declareExchange(ch, tenantID)
}

func declareExchange(ch *amqp.Channel, tenantID string) error {
	q, ex := QueueName(tenantID), ExchangeName(tenantID)
	if err := ch.ExchangeDeclare(ex, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", ex, err)
	}
	if err := ch.QueueBind(q, "", ex, false, nil); err != nil {
		return fmt.Errorf("bind %s to exchange %s: %w", q, ex, err)
	}
	return nil
}

// Declare declares the tenant's topology like DeclareTenant, but a queue that already
// exists with the other type (QUEUE_TYPE or DLQ_QUEUE_TYPE changed after the tenant
// was created) or, for a quorum queue, another initial replica count (QUEUE_REPLICAS
// changed) keeps it instead of failing: a changed setting applies to new tenants only.
// Declared says what the queues are; the caller logs a difference. Every step runs on
// channels from open, each closed before Declare returns.
func (t Topology) Declare(open Opener, tenantID string) (Declared, error) {
	ch, err := open()
	if err != nil {
		return Declared{}, err
	}
	// ch is replaced after each refused declare; the deferred call closes the last one.
	defer func() { _ = ch.Close() }()
	if err := ch.ExchangeDeclare(DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return Declared{}, fmt.Errorf("declare %s: %w", DeadLetterExchange, err)
	}
	var got Declared
	dlq := DLQName(tenantID)
	got.DLQ, got.DLQReplicas, err = declareQueue(open, &ch, dlq, t.DLQ, t.Replicas, DLQArgs)
	if err != nil {
		return Declared{}, err
	}
	if err := ch.QueueBind(dlq, dlq, DeadLetterExchange, false, nil); err != nil {
		return Declared{}, fmt.Errorf("bind %s: %w", dlq, err)
	}
	got.Queue, got.QueueReplicas, err = declareQueue(open, &ch, QueueName(tenantID), t.Queue, t.Replicas, func(qt QueueType) amqp.Table { return QueueArgs(qt, tenantID) })
	if err != nil {
		return Declared{}, err
	}
	if err := declareExchange(ch, tenantID); err != nil {
		return Declared{}, err
	}
	return got, nil
}

// declareQueue declares name as a durable queue of type want (a quorum queue with
// replicas as its initial group size, when set); if it exists with the other type it
// is declared (idempotently) as that type, a quorum queue created with another initial
// group size is declared with that one, and a queue with arguments of neither type is
// only checked passively. It returns the type and, for a quorum queue, the initial
// group size it was declared with. *ch is replaced by a fresh channel after each
// refusal and stays usable on success.
func declareQueue(open Opener, ch **amqp.Channel, name string, want QueueType, replicas int, args func(QueueType) amqp.Table) (QueueType, int, error) {
	for _, qt := range []QueueType{want, want.other()} {
		n := replicas
		err := declareWith(open, ch, name, withReplicas(args(qt), qt, n))
		if existing, ok := otherGroupSize(err); ok && qt == Quorum {
			// The refusal names the group size the queue has: everything else is
			// still checked by declaring it with that one.
			n = existing
			err = declareWith(open, ch, name, withReplicas(args(qt), qt, n))
		}
		switch {
		case err == nil:
			if qt != Quorum {
				n = 0
			}
			return qt, n, nil
		case !isPreconditionFailed(err):
			return "", 0, fmt.Errorf("declare %s: %w", name, err)
		}
	}
	if _, err := (*ch).QueueDeclarePassive(name, true, false, false, false, nil); err != nil {
		return "", 0, fmt.Errorf("declare %s: exists with other arguments: %w", name, err)
	}
	return "", 0, nil
}

// declareWith declares name with args on *ch; after a refusal (which closes the
// channel) *ch is a fresh channel and the refusal is returned.
func declareWith(open Opener, ch **amqp.Channel, name string, args amqp.Table) error {
	_, err := (*ch).QueueDeclare(name, true, false, false, false, args)
	if err == nil || !isPreconditionFailed(err) {
		return err
	}
	if rerr := reopen(open, ch); rerr != nil {
		return rerr
	}
	return err
}

// groupSizeRefusal matches RabbitMQ's refusal of a declare whose
// x-quorum-initial-group-size differs from the existing queue's, capturing the
// existing value ("none" when it was declared without one), e.g.
// "... inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/':
// received '1' but current is '3'" or "... but current is the value '3' of type
// 'signedint'".
var groupSizeRefusal = regexp.MustCompile(`inequivalent arg '` + InitialGroupSizeArg + `' .*but current is (?:none|(?:the value )?'(\d+)'(?: of type '[^']*')?)$`)

// otherGroupSize reports the existing queue's initial group size when err is the
// broker refusing a declare for that argument alone (0: the queue has none).
func otherGroupSize(err error) (int, bool) {
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed {
		return 0, false
	}
	m := groupSizeRefusal.FindStringSubmatch(aerr.Reason)
	if m == nil {
		return 0, false
	}
	if m[1] == "" {
		return 0, true
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, false
	}
	return n, true
}

func reopen(open Opener, ch **amqp.Channel) error {
	_ = (*ch).Close()
	fresh, err := open()
	if err != nil {
		return err
	}
	*ch = fresh
	return nil
}

// isPreconditionFailed reports the broker's 406: the queue exists with other arguments.
func isPreconditionFailed(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed
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
