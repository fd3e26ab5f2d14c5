package consumer

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/msgid"
	"github.com/multitenant/mtm/platform/rabbit"
)

// Every AMQP field type becomes JSON jsonb accepts: no NUL, valid UTF-8, finite
// numbers, nested tables and arrays, bytes as base64, times as RFC 3339.
func TestHeadersJSONIsSafe(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	h := amqp.Table{
		"nul":       "a\x00b",
		"bad-utf8":  "caf\xe9",
		"k\x00ey":   1,
		"bytes":     []byte{0, 1, 2, 0xff},
		"time":      at,
		"nan":       math.NaN(),
		"inf":       float32(math.Inf(1)),
		"decimal":   amqp.Decimal{Scale: 2, Value: -5},
		"nested":    amqp.Table{"inner": []any{"x\x00", int64(7), amqp.Table{"deep": true}}},
		"nil":       nil,
		"x-death":   []any{amqp.Table{"reason": "expired", "count": int64(1)}},
		"producer1": "v",
	}
	b := headersJSON(h)
	require.True(t, json.Valid(b), string(b))
	require.NotContains(t, string(b), `\u0000`)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, "a\uFFFDb", got["nul"])
	require.Equal(t, "caf\uFFFD", got["bad-utf8"])
	require.Equal(t, 1.0, got["k\uFFFDey"])
	require.Equal(t, "AAEC/w==", got["bytes"])
	require.Equal(t, "2025-06-01T12:00:00Z", got["time"])
	require.Equal(t, "NaN", got["nan"])
	require.Equal(t, "+Inf", got["inf"])
	require.Equal(t, "-0.05", got["decimal"])
	require.Equal(t, map[string]any{"inner": []any{"x\uFFFD", 7.0, map[string]any{"deep": true}}}, got["nested"])
	require.Nil(t, got["nil"])
	require.NotContains(t, got, headersTruncatedKey)
	require.True(t, strings.HasPrefix(string(b), `{"x-death":`), "x- headers first: %s", b)
}

// Past maxHeadersJSON whole entries are left out and the object says so.
func TestHeadersJSONIsBounded(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("y", 40<<10)
	b := headersJSON(amqp.Table{"a": big, "b": big, "c": "small", "x-dead-letter-reason": "too_large: x"})
	require.LessOrEqual(t, len(b), maxHeadersJSON)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, true, got[headersTruncatedKey])
	require.Equal(t, "too_large: x", got["x-dead-letter-reason"])
	require.Equal(t, big, got["a"])
	require.NotContains(t, got, "b")
	require.Equal(t, "small", got["c"], "a smaller entry after a dropped one still fits")

	// Deep nesting is cut, not recursed into without end.
	var deep any = "bottom"
	for range 100 {
		deep = amqp.Table{"d": deep}
	}
	require.True(t, json.Valid(headersJSON(amqp.Table{"deep": deep})))
}

// Reason, detail, death key and id by who dead-lettered the message.
func TestArchiveRow(t *testing.T) {
	t.Parallel()
	tenant := uuid.New()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	ours := amqp.Delivery{MessageId: "order-1", Body: []byte(`{"broken":`), Headers: amqp.Table{
		rabbit.HeaderDeadLetterReason: "invalid_json: unexpected end: of input",
		headerDeadLetterID:            "d-1",
		headerDeadLetteredAt:          at.Format(time.RFC3339Nano),
	}}
	r := archiveRow(tenant, ours)
	wantID, _ := msgid.FromMessageID(tenant, "order-1")
	require.Equal(t, wantID, r.ID)
	require.Equal(t, "invalid_json", r.Reason)
	require.Equal(t, "unexpected end: of input", r.ReasonDetail)
	require.Equal(t, "id:d-1", r.DeathKey)
	require.Equal(t, at, r.DeadLetteredAt)
	require.Equal(t, r, archiveRow(tenant, ours), "the same delivery gives the same row")

	xdeath := func(count int64) amqp.Table {
		return amqp.Table{
			rabbit.HeaderDeadLetterReason: "forged: by the producer",
			"x-death":                     []any{amqp.Table{"reason": "delivery_limit", "queue": "tenant_x_queue", "count": count, "time": at}},
		}
	}
	broker := amqp.Delivery{Body: []byte(`{"ok":true}`), Headers: xdeath(1)}
	r1 := archiveRow(tenant, broker)
	require.Equal(t, "delivery_limit", r1.Reason, "x-death wins over a producer's header")
	require.Equal(t, "from tenant_x_queue", r1.ReasonDetail)
	require.Equal(t, at, r1.DeadLetteredAt)
	require.True(t, strings.HasPrefix(r1.DeathKey, "x-death:"))
	require.Equal(t, r1.ID, archiveRow(tenant, broker).ID, "no message_id: still a stable id")
	require.Equal(t, r1.DeathKey, archiveRow(tenant, broker).DeathKey)
	require.NotEqual(t, r1.DeathKey, archiveRow(tenant, amqp.Delivery{Body: broker.Body, Headers: xdeath(2)}).DeathKey, "a new death is a new key")
	require.NotEqual(t, r1.ID, archiveRow(uuid.New(), broker).ID, "namespaced by tenant")

	hand := archiveRow(tenant, amqp.Delivery{MessageId: "m\x00", Body: []byte("x")})
	require.Equal(t, "unknown", hand.Reason)
	require.Equal(t, "m\uFFFD", hand.MessageID)
	require.True(t, strings.HasPrefix(hand.DeathKey, "content:"))
}
