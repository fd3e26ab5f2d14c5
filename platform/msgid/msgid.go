// Package msgid derives a message's stored id from the identity its producer gave it.
// An AMQP message_id that is not a UUID maps to UUIDv5(tenant id, message_id)
// (FromMessageID, the consumer's rule); an HTTP Idempotency-Key maps into a namespace of
// its own (FromIdempotencyKey), so the same string sent both ways names two different
// messages and neither path can pre-empt the other's ids.
package msgid

import (
	"fmt"

	"github.com/google/uuid"
)

// FromMessageID is the stored id of a message delivered with AMQP message_id
// amqpMessageID: a UUID in its canonical 36-character form (8-4-4-4-12 hex digits) is
// used as is; any other non-empty string (including the urn:uuid:, braced and 32-digit
// forms uuid.Parse also accepts, which are different message ids) maps to UUIDv5 in the
// tenant's namespace (the same string always gives the same id, and two tenants' ids
// never collide); without one, a fresh UUIDv7 (time-ordered, index friendly).
func FromMessageID(tenant uuid.UUID, amqpMessageID string) (uuid.UUID, error) {
	if amqpMessageID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return uuid.Nil, fmt.Errorf("new message id: %w", err)
		}
		return id, nil
	}
	if len(amqpMessageID) == 36 {
		// At length 36 uuid.Parse accepts only the canonical form.
		if id, err := uuid.Parse(amqpMessageID); err == nil {
			return id, nil
		}
	}
	return uuid.NewSHA1(tenant, []byte(amqpMessageID)), nil
}

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
