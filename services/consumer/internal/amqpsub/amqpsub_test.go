package amqpsub

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// Quorum queues add x-delivery-count (a number) and dead-lettering adds x-death (a
// list of tables): watermill-amqp's default marshaler fails on both; ours must not.
func TestToMessageToleratesNonStringHeaders(t *testing.T) {
	t.Parallel()
	d := amqp.Delivery{
		MessageId: "order-1",
		Body:      []byte(`{"a":1}`),
		Headers: amqp.Table{
			"x-delivery-count": int64(2),
			"x-death":          []any{amqp.Table{"count": int64(1), "queue": "q", "time": time.Unix(0, 0)}},
			"trace":            "abc",
			"raw":              []byte("bytes"),
		},
		Redelivered: true,
		Timestamp:   time.Date(2025, 6, 1, 12, 0, 5, 0, time.UTC),
	}
	msg := toMessage(d)
	require.Equal(t, "order-1", msg.UUID)
	require.Equal(t, "order-1", msg.Metadata.Get(MetaMessageID))
	require.Equal(t, "2", msg.Metadata.Get(MetaDeliveryCount))
	require.Equal(t, "abc", msg.Metadata.Get("trace"))
	require.Equal(t, "bytes", msg.Metadata.Get("raw"))
	require.Contains(t, msg.Metadata.Get("x-death"), "count")
	require.Equal(t, "true", msg.Metadata.Get(MetaRedelivered))
	require.Equal(t, "2025-06-01T12:00:05Z", msg.Metadata.Get(MetaTimestamp))
	_, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetaReceivedAt))
	require.NoError(t, err)

	anon := toMessage(amqp.Delivery{Body: []byte(`{}`)})
	require.NotEmpty(t, anon.UUID, "a watermill UUID even without message_id")
	require.Empty(t, anon.Metadata.Get(MetaMessageID), "but the identity source stays empty")
	require.Empty(t, anon.Metadata.Get(MetaTimestamp), "no timestamp, no lag")
}
