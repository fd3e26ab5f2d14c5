-- +goose Up
-- Query-side tenant read model, rebuilt from the event store by `query -replay`.
CREATE TABLE tenants (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL,
    status          text        NOT NULL,
    workers_desired integer     NOT NULL,
    version         integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX tenants_created_id ON tenants (created_at, id);

-- How far each projection has applied the event store (event_store.position).
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Worker counts the consumer actually runs, reported by the consumer itself
-- (not derived from events), so the query side can show workers.current.
CREATE TABLE tenant_workers (
    tenant_id  uuid        PRIMARY KEY,
    current    integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE tenant_workers;
DROP TABLE projection_checkpoints;
DROP TABLE tenants;
