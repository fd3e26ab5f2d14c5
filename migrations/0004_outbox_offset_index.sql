-- +goose Up
-- Event subscriptions read the outbox in offset order (see platform/eventstore: appends are
-- serialised, so offsets commit in order and readers need no snapshot xmin).
CREATE INDEX watermill_tenant_events_offset ON watermill_tenant_events ("offset");

-- +goose Down
DROP INDEX watermill_tenant_events_offset;
