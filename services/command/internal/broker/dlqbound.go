package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/multitenant/mtm/platform/lifecycle"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rabbitadmin"
)

// DLQBound keeps the policy that bounds every tenant's DLQ in place, so one tenant's
// poison messages cannot fill the broker. It is a policy rather than a queue argument:
// it reaches DLQs declared before it existed, and a changed bound needs no redeclare.
type DLQBound struct {
	admin     *rabbitadmin.Client
	vhost     string
	maxLength int
}

// NewDLQBound bounds the DLQs of vhost at maxLength messages (DLQ_MAX_LENGTH).
func NewDLQBound(admin *rabbitadmin.Client, vhost string, maxLength int) *DLQBound {
	return &DLQBound{admin: admin, vhost: vhost, maxLength: maxLength}
}

// dlqPolicyPriority outranks an operator's catch-all policies (priority 0 by default);
// RabbitMQ applies only the highest-priority policy that matches a queue.
const dlqPolicyPriority = 10

// Ensure puts the policy (idempotent).
func (b *DLQBound) Ensure(ctx context.Context) error {
	err := b.admin.PutPolicy(ctx, b.vhost, rabbit.DLQPolicyName, rabbitadmin.Policy{
		Pattern:    rabbit.DLQPattern,
		Definition: rabbit.DLQPolicy(b.maxLength),
		Priority:   dlqPolicyPriority,
		ApplyTo:    "queues",
	})
	if err != nil {
		return fmt.Errorf("put DLQ bound policy: %w", err)
	}
	return nil
}

// Run ensures the policy now and every interval (it may have been removed by hand, or
// the management API may have been away at start) until ctx ends.
func (b *DLQBound) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	lifecycle.Every(ctx, interval, func(ctx context.Context) {
		if err := b.Ensure(ctx); err != nil && ctx.Err() == nil {
			log.Warn("could not bound the dead-letter queues, will retry", "err", err, "retry_in", interval)
		}
	})
}
