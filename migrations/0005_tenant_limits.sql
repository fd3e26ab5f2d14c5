-- +goose Up
-- Query side: a tenant's own ingest limit (tenant.rate_limit_changed.v1). NULL means the
-- tenant has none and the command service's default applies.
ALTER TABLE tenants
    ADD COLUMN rate_per_second integer,
    ADD COLUMN rate_burst      integer,
    ADD CONSTRAINT tenants_rate_limit_pair CHECK ((rate_per_second IS NULL) = (rate_burst IS NULL));

-- Command side: the workers each live tenant asks for, written in the same transaction
-- as the event that sets them, so MAX_TOTAL_WORKERS is checked against a sum that cannot
-- move under a command holding the capacity lock (see services/command tenant.Service).
CREATE TABLE worker_claims (
    tenant_id uuid    PRIMARY KEY,
    workers   integer NOT NULL CHECK (workers > 0)
);

-- Tenants that exist already: their latest worker count, unless deleted.
INSERT INTO worker_claims (tenant_id, workers)
SELECT stream_id, workers FROM (
    SELECT DISTINCT ON (stream_id) stream_id, event_type, (payload -> 'data' ->> 'workers')::integer AS workers
    FROM event_store
    WHERE event_type IN ('tenant.created.v1', 'tenant.concurrency_changed.v1', 'tenant.deleted.v1')
    ORDER BY stream_id, version DESC
) latest
WHERE event_type <> 'tenant.deleted.v1' AND workers > 0;

-- +goose Down
DROP TABLE worker_claims;
ALTER TABLE tenants
    DROP CONSTRAINT tenants_rate_limit_pair,
    DROP COLUMN rate_burst,
    DROP COLUMN rate_per_second;
