package consumer

import (
	"fmt"

	"github.com/google/uuid"
)

// MessageID is a message's stored identity: an AMQP message_id that is
// a UUID in its canonical 36-character form (8-4-4-4-12 hex digits) is used as is; any
// other non-empty string (including the urn:uuid:, braced and 32-digit forms
// uuid.Parse also accepts, which are different message ids) maps to UUIDv5 in the
// tenant's namespace (the same string always gives the same id, and two tenants'
// ids never collide; HTTP Idempotency-Keys live in another namespace, see platform/msgid);
// without one, a fresh UUIDv7 (time-ordered, index friendly).
func MessageID(tenant uuid.UUID, amqpMessageID string) (uuid.UUID, error) {
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
