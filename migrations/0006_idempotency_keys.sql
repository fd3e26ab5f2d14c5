-- +goose Up
-- Which body each HTTP Idempotency-Key was first used with, per tenant, so a reuse with
-- another body is refused instead of silently deduplicated away. Rows older than the
-- command's IDEMPOTENCY_KEY_TTL are pruned.
CREATE TABLE idempotency_keys (
    tenant_id     uuid        NOT NULL,
    key           text        NOT NULL,
    body_sha256   bytea       NOT NULL,
    first_used_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_first_used ON idempotency_keys (first_used_at);

-- +goose Down
DROP TABLE idempotency_keys;
