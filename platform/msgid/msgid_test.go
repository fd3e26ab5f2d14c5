package msgid

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestIdempotencyKeysHaveTheirOwnNamespace(t *testing.T) {
	t.Parallel()
	tenantA, tenantB := uuid.New(), uuid.New()

	k := FromIdempotencyKey(tenantA, "order-42")
	require.Equal(t, k, FromIdempotencyKey(tenantA, "order-42"), "the same key gives the same id")
	require.Equal(t, uuid.Version(5), k.Version())
	require.NotEqual(t, k, FromIdempotencyKey(tenantA, "order-43"))
	require.NotEqual(t, k, FromIdempotencyKey(tenantB, "order-42"), "namespaced by tenant")

	// The consumer stores AMQP message_id "order-42" as UUIDv5(tenant, "order-42"): an
	// AMQP producer sending the HTTP client's key as its message_id (or the reverse)
	// names another message.
	require.NotEqual(t, uuid.NewSHA1(tenantA, []byte("order-42")), k)
	require.NotEqual(t, tenantA, IdempotencyNamespace(tenantA))
	require.NotEqual(t, IdempotencyNamespace(tenantA), IdempotencyNamespace(tenantB))
}
