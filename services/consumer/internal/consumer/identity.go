package consumer

import (
	"fmt"

	"github.com/google/uuid"
)

// MessageID is a message's stored identity (DESIGN.md 4.5): an AMQP message_id that
// parses as a UUID is used as is; any other non-empty string maps to UUIDv5 in the
// tenant's namespace (the same string always gives the same id, and two tenants'
// ids never collide); without one, a fresh UUIDv7 (time-ordered, index friendly).
func MessageID(tenant uuid.UUID, amqpMessageID string) (uuid.UUID, error) {
	if amqpMessageID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return uuid.Nil, fmt.Errorf("new message id: %w", err)
		}
		return id, nil
	}
	if id, err := uuid.Parse(amqpMessageID); err == nil {
		return id, nil
	}
	return uuid.NewSHA1(tenant, []byte(amqpMessageID)), nil
}
