-- +goose Up
-- Consumer replicas share the tenants. Each live replica heartbeats its row here; a
-- replica whose heartbeat is older than its REPLICA_TTL is gone, and every tenant is
-- run by the live replica that rendezvous hashing picks for it. Liveness is judged
-- with the database's clock, so replicas' clocks never have to agree.
CREATE TABLE consumer_replicas (
    replica_id   text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- How many consumers each replica runs on each tenant's queue. During a hand-over two
-- replicas may both run some; tenant_workers.current is their sum, rewritten under the
-- tenant_workers row lock with every report. A replica's rows go when it leaves or its
-- heartbeat expires. No foreign key to consumer_replicas: a replica cut off from the
-- database past its TTL still runs consumers, and its next report says so.
CREATE TABLE tenant_replica_workers (
    tenant_id  uuid        NOT NULL,
    replica_id text        NOT NULL,
    current    integer     NOT NULL CHECK (current > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, replica_id)
);
CREATE INDEX tenant_replica_workers_replica ON tenant_replica_workers (replica_id);

-- The replica that owns the tenant (it reports even with no workers, e.g. paused) and
-- the replicas that currently run its consumers.
ALTER TABLE tenant_workers
    ADD COLUMN owner    text,
    ADD COLUMN replicas text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE tenant_workers
    DROP COLUMN replicas,
    DROP COLUMN owner;
DROP TABLE tenant_replica_workers;
DROP TABLE consumer_replicas;
