-- +goose Up
-- The consumer's latest sample of each tenant's queue backlog, next to its worker report:
-- ready messages in the queue, deliveries the consumer holds unacked, the delivery lag
-- of the latest timestamped delivery, and when the consumer took the sample. All four
-- are NULL until the consumer's first sample (the query API then shows "backlog": null)
-- and are only ever set together. Nullable columns without a default are added without
-- rewriting the table.
-- The consumer rewrites a sample only when a value changed or sampled_at is 30 s old, so
-- an idle system writes nothing every pass, yet a sampled_at much older than that means
-- the consumer is not sampling (stopped, or the broker is away).
ALTER TABLE tenant_workers
    ADD COLUMN ready       bigint,
    ADD COLUMN unacked     bigint,
    ADD COLUMN lag_seconds double precision,
    ADD COLUMN sampled_at  timestamptz,
    ADD CONSTRAINT tenant_workers_backlog_together CHECK (
        (ready IS NULL) = (sampled_at IS NULL)
        AND (unacked IS NULL) = (sampled_at IS NULL)
        AND (lag_seconds IS NULL) = (sampled_at IS NULL));

-- +goose Down
ALTER TABLE tenant_workers
    DROP CONSTRAINT tenant_workers_backlog_together,
    DROP COLUMN sampled_at,
    DROP COLUMN lag_seconds,
    DROP COLUMN unacked,
    DROP COLUMN ready;
