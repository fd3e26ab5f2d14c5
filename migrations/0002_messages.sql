-- +goose Up
-- Tenant messages, one LIST partition per tenant. The consumer creates each partition
-- as a plain table and ATTACHes it (CREATE ... PARTITION OF would lock every tenant's
-- reads). The primary key includes the partition key, as Postgres requires, and makes
-- redelivered messages collapse (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE messages (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
) PARTITION BY LIST (tenant_id);

-- Keyset pagination walks (created_at, id) inside one tenant's partition.
CREATE INDEX messages_tenant_created_id ON messages (tenant_id, created_at, id);

-- +goose Down
DROP TABLE messages;
