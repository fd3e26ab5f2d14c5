// Command amqp-producer publishes JSON messages straight into a tenant's queue over
// AMQP, the way a production producer should: persistent, with publisher confirms, a
// message_id on every message (a re-sent message is stored once) and a timestamp (the
// consumer's lag metrics are measured from it).
//
//	amqp-producer -tenant $T -amqp-url amqp://tenant_$T:$PASSWORD@localhost:5672/ -n 10
//
// It publishes to the tenant's exchange, tenant_{id}_queue, which both the tenant's own
// broker account and the services' account may write to.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type config struct {
	url         string
	tenant      string
	n           int
	idPrefix    string
	traceparent string
	timeout     time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "amqp-url", env("AMQP_URL", "amqp://guest:guest@localhost:5672/"), "broker URL with the tenant's credentials or the services' (env AMQP_URL)")
	flag.StringVar(&cfg.tenant, "tenant", os.Getenv("TENANT_ID"), "tenant id (env TENANT_ID)")
	flag.IntVar(&cfg.n, "n", 10, "messages to publish")
	flag.StringVar(&cfg.idPrefix, "id-prefix", "amqp-producer-"+strconv.FormatInt(time.Now().Unix(), 10), "message_id prefix: message i is <prefix>-<i>; run again with the same prefix and nothing is stored twice")
	flag.StringVar(&cfg.traceparent, "traceparent", "", "W3C traceparent header to put on every message (the consumer's spans join that trace)")
	flag.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "bound on the whole run")
	flag.Parse()
	if cfg.tenant == "" {
		fmt.Fprintln(os.Stderr, "amqp-producer: -tenant (or TENANT_ID) is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "amqp-producer:", err)
		os.Exit(1)
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// exchange is the tenant's fanout exchange, named like its queue and bound to it alone.
func exchange(tenant string) string { return "tenant_" + tenant + "_queue" }

// message is the AMQP message for body: persistent so it survives a broker restart,
// with an identity and the time it was sent.
func message(id string, body []byte, traceparent string, now time.Time) amqp.Publishing {
	p := amqp.Publishing{
		MessageId:    id,
		Timestamp:    now.UTC(),
		DeliveryMode: amqp.Persistent,
		ContentType:  "application/json",
		Body:         body,
	}
	if traceparent != "" {
		p.Headers = amqp.Table{"traceparent": traceparent}
	}
	return p
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	conn, err := amqp.Dial(cfg.url)
	if err != nil {
		return fmt.Errorf("dial broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	// Publisher confirms: a message counts as sent only once the broker acked it.
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("enable confirms: %w", err)
	}
	// mandatory publishes come back here when nothing is bound (the tenant is gone).
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	for i := range cfg.n {
		id := fmt.Sprintf("%s-%d", cfg.idPrefix, i)
		body, err := json.Marshal(map[string]any{"seq": i, "source": "amqp-producer"})
		if err != nil {
			return fmt.Errorf("encode message %d: %w", i, err)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange(cfg.tenant), "", true, false,
			message(id, body, cfg.traceparent, time.Now()))
		if err != nil {
			return fmt.Errorf("publish %s: %w", id, err)
		}
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("confirm of %s: %w", id, err)
		}
		if !acked {
			return fmt.Errorf("broker refused %s (nack): retry it with the same message_id", id)
		}
		select {
		case r := <-returns:
			return fmt.Errorf("message %s returned: %d %s", r.MessageId, r.ReplyCode, r.ReplyText)
		default:
		}
		fmt.Fprintln(out, id)
	}
	return errors.Join(ch.Close(), conn.Close())
}
