-- +goose NO TRANSACTION

-- +goose Up
-- Tenant messages become two-level: messages is HASH partitioned on tenant_id into 64
-- sub-parents (messages_h00..messages_h63), each LIST partitioned with one leaf per
-- tenant (messages_<tenant hex>, as before). An ATTACH or DETACH locks, and makes every
-- backend rebuild the partition descriptor of, only one sub-parent of ~1/64 of the
-- tenants instead of the whole table, and attaches to different sub-parents run in
-- parallel.
--
-- Every existing leaf is moved: detached from the old parent and attached to the
-- sub-parent its tenant id hashes to (which scans the leaf once to validate its rows).
-- The procedure commits every `batch` leaves: one transaction over thousands of leaves
-- runs out of lock table entries (max_locks_per_transaction). A moved leaf is readable
-- through messages again only once the parents are swapped at the end, so stop the
-- consumers and the query service while this runs. Interrupted, it is safe to run
-- again: it resumes where the last committed batch left off.
-- +goose StatementBegin
CREATE OR REPLACE PROCEDURE messages_two_level_up(batch int)
LANGUAGE plpgsql AS $$
DECLARE
    leaf record;
    tenant uuid;
    sub regclass;
    moved int;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table
               WHERE partrelid = 'messages'::regclass AND partstrat = 'h') THEN
        RETURN; -- converted by an earlier run
    END IF;

    CREATE TABLE IF NOT EXISTS messages_two_level (
        tenant_id  uuid        NOT NULL,
        id         uuid        NOT NULL,
        payload    jsonb       NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT messages_two_level_pkey PRIMARY KEY (tenant_id, id)
    ) PARTITION BY HASH (tenant_id);
    -- Created while the tree is empty, so every sub-parent inherits it and each moved
    -- leaf's existing copy is adopted on attach instead of building one over all leaves
    -- in one transaction.
    CREATE INDEX IF NOT EXISTS messages_two_level_tenant_created_id
        ON messages_two_level (tenant_id, created_at, id);
    FOR r IN 0..63 LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF messages_two_level
                        FOR VALUES WITH (MODULUS 64, REMAINDER %s) PARTITION BY LIST (tenant_id)',
                       'messages_h' || lpad(r::text, 2, '0'), r);
    END LOOP;
    COMMIT;

    LOOP
        moved := 0;
        FOR leaf IN
            SELECT i.inhrelid::regclass AS rel, i.inhdetachpending AS pending,
                   pg_get_expr(c.relpartbound, c.oid) AS bound
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'messages'::regclass
            ORDER BY i.inhrelid
            LIMIT batch
        LOOP
            moved := moved + 1;
            IF leaf.pending THEN
                -- A tenant deletion's concurrent detach was interrupted: finish it. The
                -- consumer drops the detached table when it retries the deletion.
                EXECUTE format('ALTER TABLE messages DETACH PARTITION %s FINALIZE', leaf.rel);
                CONTINUE;
            END IF;
            tenant := (regexp_match(leaf.bound, '^FOR VALUES IN \(''([0-9a-f-]{36})''\)$'))[1]::uuid;
            IF tenant IS NULL THEN
                RAISE EXCEPTION 'messages partition % has bound "%", not one tenant id', leaf.rel, leaf.bound;
            END IF;
            -- Postgres's own hash decides the sub-parent.
            SELECT c.oid::regclass INTO sub
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid,
            LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\d+), remainder (\d+)') AS b
            WHERE i.inhparent = 'messages_two_level'::regclass
              AND satisfies_hash_partition('messages_two_level'::regclass, b[1]::int, b[2]::int, tenant);
            IF sub IS NULL THEN
                RAISE EXCEPTION 'no sub-parent of messages_two_level accepts tenant %', tenant;
            END IF;
            EXECUTE format('ALTER TABLE messages DETACH PARTITION %s', leaf.rel);
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s %s', sub, leaf.rel, leaf.bound);
        END LOOP;
        COMMIT;
        EXIT WHEN moved = 0;
    END LOOP;

    -- Every leaf has moved. One transaction swaps the parents, so a reader sees the old
    -- or the new messages, never none.
    DROP TABLE messages;
    ALTER TABLE messages_two_level RENAME TO messages;
    ALTER TABLE messages RENAME CONSTRAINT messages_two_level_pkey TO messages_pkey;
    ALTER INDEX messages_two_level_tenant_created_id RENAME TO messages_tenant_created_id;
    COMMIT;
END
$$;
-- +goose StatementEnd

CALL messages_two_level_up(100);

DROP PROCEDURE messages_two_level_up(int);

-- +goose Down
-- The reverse move: every leaf goes from its sub-parent back to a single LIST parent,
-- in committed batches, safe to run again after an interruption. It restores the
-- layout whose every ATTACH rebuilds the partition descriptor over all tenants, so it
-- takes about as long as setting up every tenant did before. Stop the consumers and
-- the query service while it runs.
-- +goose StatementBegin
CREATE OR REPLACE PROCEDURE messages_two_level_down(batch int)
LANGUAGE plpgsql AS $$
DECLARE
    leaf record;
    moved int;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table
               WHERE partrelid = 'messages'::regclass AND partstrat = 'l') THEN
        RETURN; -- reverted by an earlier run
    END IF;

    CREATE TABLE IF NOT EXISTS messages_one_level (
        tenant_id  uuid        NOT NULL,
        id         uuid        NOT NULL,
        payload    jsonb       NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT messages_one_level_pkey PRIMARY KEY (tenant_id, id)
    ) PARTITION BY LIST (tenant_id);
    CREATE INDEX IF NOT EXISTS messages_one_level_tenant_created_id
        ON messages_one_level (tenant_id, created_at, id);
    COMMIT;

    LOOP
        moved := 0;
        FOR leaf IN
            SELECT l.inhparent::regclass AS sub, l.inhrelid::regclass AS rel,
                   l.inhdetachpending AS pending, pg_get_expr(c.relpartbound, c.oid) AS bound
            FROM pg_inherits s
            JOIN pg_inherits l ON l.inhparent = s.inhrelid
            JOIN pg_class c ON c.oid = l.inhrelid
            WHERE s.inhparent = 'messages'::regclass
            ORDER BY l.inhrelid
            LIMIT batch
        LOOP
            moved := moved + 1;
            IF leaf.pending THEN
                EXECUTE format('ALTER TABLE %s DETACH PARTITION %s FINALIZE', leaf.sub, leaf.rel);
                CONTINUE;
            END IF;
            EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', leaf.sub, leaf.rel);
            EXECUTE format('ALTER TABLE messages_one_level ATTACH PARTITION %s %s', leaf.rel, leaf.bound);
        END LOOP;
        COMMIT;
        EXIT WHEN moved = 0;
    END LOOP;

    DROP TABLE messages; -- the hash parent and its now empty sub-parents
    ALTER TABLE messages_one_level RENAME TO messages;
    ALTER TABLE messages RENAME CONSTRAINT messages_one_level_pkey TO messages_pkey;
    ALTER INDEX messages_one_level_tenant_created_id RENAME TO messages_tenant_created_id;
    COMMIT;
END
$$;
-- +goose StatementEnd

CALL messages_two_level_down(100);

DROP PROCEDURE messages_two_level_down(int);
