// Package msgid derives the stored ids of messages whose identity a client names over
// HTTP. An AMQP message_id that is not a UUID maps to UUIDv5(tenant id, message_id) (the
// consumer's rule); an HTTP Idempotency-Key maps into a namespace of its own, so the same
// string sent both ways names two different messages and neither path can pre-empt the
// other's ids.
package msgid

import "github.com/google/uuid"

// idempotencyKeys is the fixed purpose from which each tenant's Idempotency-Key
// namespace is derived; changing it would change every HTTP message id.
var idempotencyKeys = uuid.MustParse("2cdd95f1-748c-455f-8d9e-e8f88b0bb1f1")

// IdempotencyNamespace is the tenant's namespace for Idempotency-Key ids:
// UUIDv5(idempotency purpose, tenant id). It is not the tenant id, which is the AMQP
// message_id namespace.
func IdempotencyNamespace(tenant uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(idempotencyKeys, tenant[:])
}

// FromIdempotencyKey is the message id of POST /tenants/{id}/messages with that
// Idempotency-Key: the same key always gives the same id, in that tenant only.
func FromIdempotencyKey(tenant uuid.UUID, key string) uuid.UUID {
	return uuid.NewSHA1(IdempotencyNamespace(tenant), []byte(key))
}
