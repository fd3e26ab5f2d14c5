package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rabbitadmin"
)

// DrainProbe tells the drain process manager whether a tenant's work queue is empty.
//
// A passive declare gives the ready count as the broker has it now, but says nothing
// of messages delivered and not yet acknowledged. With the management API (admin set)
// the queue's total, ready plus unacknowledged, must be 0 too; that statistic lags the
// broker by up to its collection interval (5 s by default). Once a drain is requested
// nothing adds to the queue (HTTP ingest refuses, the tenant's broker user lost its
// write permission), so a stale 0 misses only messages published within one such
// interval before the request and still unacknowledged. Without the management API only
// ready is known: a message a worker holds unacknowledged while both checks run is not
// seen, and the tenant may be deleted while it is in flight (the consumer then nacks
// it into a queue that is being deleted). The process manager asks twice in a row
// before deleting, which narrows but does not close that window.
type DrainProbe struct {
	topo  *Topology
	admin *rabbitadmin.Client // nil: ready count only
	vhost string
}

// NewDrainProbe probes through topo's connection and, when admin is not nil, the
// management API on vhost.
func NewDrainProbe(topo *Topology, admin *rabbitadmin.Client, vhost string) *DrainProbe {
	return &DrainProbe{topo: topo, admin: admin, vhost: vhost}
}

// Empty reports whether the tenant's work queue holds no message. A queue that does not
// exist holds none.
func (p *DrainProbe) Empty(ctx context.Context, tenantID string) (bool, error) {
	name := rabbit.QueueName(tenantID)
	var ready int
	missing := false
	err := p.topo.withChannel(ctx, func(ch *amqp.Channel) error {
		q, err := rabbit.Inspect(ch, name)
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
			missing = true
			return nil
		}
		ready = q.Messages
		return err
	})
	if err != nil {
		return false, err
	}
	if missing || ready > 0 || p.admin == nil {
		return missing || ready == 0, nil
	}
	q, err := p.admin.Queue(ctx, p.vhost, name)
	if rabbitadmin.IsStatus(err, http.StatusNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue statistics of %s: %w", name, err)
	}
	return q.Messages == 0, nil
}

// Republish publishes a dead letter's raw body into the tenant's queue under its
// original message id, with a confirm (see Publish for the errors). The body need not
// be JSON: a poison message redriven as is dies again, with its death count raised.
func (p *Publisher) Republish(ctx context.Context, tenantID, messageID string, body []byte, correlationID string) error {
	return p.Publish(ctx, Message{ID: messageID, TenantID: tenantID, Body: body, CorrelationID: correlationID})
}
