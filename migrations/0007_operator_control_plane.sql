-- +goose Up
-- Dead letters archived from each tenant's DLQ, acked off the DLQ only after this row
-- commits. One row per message (id is the same UUID the message would be stored under);
-- a message that dies again after a redrive updates its row (deaths + 1, back to
-- pending). death_key identifies the dead-lettering the row last counted, so the same
-- DLQ delivery archived twice (consumer crash before its ack) is not counted twice.
CREATE TABLE dead_letters (
    tenant_id              uuid        NOT NULL,
    id                     uuid        NOT NULL,
    message_id             text        NOT NULL,
    reason                 text        NOT NULL, -- a code: invalid_json, too_large, delivery_limit, expired, ...
    reason_detail          text        NOT NULL DEFAULT '',
    body                   bytea       NOT NULL,
    body_size              integer     NOT NULL,
    headers                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    deaths                 integer     NOT NULL CHECK (deaths > 0),
    death_key              text        NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('pending', 'redriven', 'purged')),
    first_dead_lettered_at timestamptz NOT NULL,
    last_dead_lettered_at  timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Keyset pages, oldest first, optionally by status.
CREATE INDEX dead_letters_page ON dead_letters (tenant_id, first_dead_lettered_at, id);
CREATE INDEX dead_letters_status_page ON dead_letters (tenant_id, status, first_dead_lettered_at, id);
CREATE INDEX dead_letters_reason_page ON dead_letters (tenant_id, reason, first_dead_lettered_at, id);

-- Query side: a draining tenant's drain (tenant.deletion_requested.v1).
ALTER TABLE tenants
    ADD COLUMN drain_requested_at timestamptz,
    ADD COLUMN drain_deadline     timestamptz;

-- Command side: tenants waiting to be deleted once their queue is empty, written in the
-- same transaction as the event that starts (or ends) the drain, so the process manager
-- that appends tenant.deleted.v1 never misses one across restarts.
-- correlation_id is the drain request's, recorded again on the final tenant.deleted.v1.
CREATE TABLE tenant_drains (
    tenant_id      uuid        PRIMARY KEY,
    requested_at   timestamptz NOT NULL,
    deadline       timestamptz NOT NULL,
    correlation_id text        NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE tenant_drains;
ALTER TABLE tenants
    DROP COLUMN drain_deadline,
    DROP COLUMN drain_requested_at;
DROP TABLE dead_letters;
