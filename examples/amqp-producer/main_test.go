package main

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestMessageIsDurableAndIdentified(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	p := message("order-1", []byte(`{}`), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", now)
	if p.DeliveryMode != amqp.Persistent || p.MessageId != "order-1" || !p.Timestamp.Equal(now) || p.Timestamp.Location() != time.UTC {
		t.Fatalf("message = %+v", p)
	}
	if p.Headers["traceparent"] == nil {
		t.Fatal("traceparent not set")
	}
	if message("x", nil, "", now).Headers != nil {
		t.Fatal("headers without traceparent")
	}
	if got := exchange("t1"); got != "tenant_t1_queue" {
		t.Fatalf("exchange = %s", got)
	}
}
