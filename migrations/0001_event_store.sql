-- +goose Up
-- The event store: append-only, one stream per tenant; (stream_id, version) gives
-- optimistic concurrency. position orders all events globally for replay.
CREATE TABLE event_store (
    position    bigserial   PRIMARY KEY,
    stream_id   uuid        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    event_id    uuid        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    payload     jsonb       NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);

-- +goose StatementBegin
CREATE FUNCTION event_store_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_store is append-only';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER event_store_append_only
    BEFORE UPDATE OR DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_append_only();

-- Live tenant names, written in the same transaction as the events that claim or
-- release them, so two concurrent creates of one name cannot both succeed.
CREATE TABLE tenant_names (
    name      text PRIMARY KEY,
    tenant_id uuid NOT NULL UNIQUE
);

-- The outbox/transport for events, in watermill-sql's DefaultPostgreSQLSchema layout
-- (topic "tenant_events"), created here because a publisher on a transaction cannot
-- initialise its own schema.
CREATE TABLE watermill_tenant_events (
    "offset"         bigserial,
    "uuid"           varchar(36) NOT NULL,
    "created_at"     timestamp   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "payload"        json        DEFAULT NULL,
    "metadata"       json        DEFAULT NULL,
    "transaction_id" xid8        NOT NULL,
    PRIMARY KEY ("transaction_id", "offset")
);

CREATE TABLE watermill_offsets_tenant_events (
    consumer_group         varchar(255) NOT NULL,
    offset_acked           bigint,
    last_processed_transaction_id xid8 NOT NULL,
    PRIMARY KEY (consumer_group)
);

-- +goose Down
DROP TABLE watermill_offsets_tenant_events;
DROP TABLE watermill_tenant_events;
DROP TABLE tenant_names;
DROP TABLE event_store;
DROP FUNCTION event_store_append_only();
