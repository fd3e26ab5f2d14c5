package deadletters

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Row is one DLQ delivery to archive. The tenant is not a field: Archive takes it once
// for the whole batch, from the queue the batch was read from, so nothing a message
// carries can place a row in another tenant's archive.
type Row struct {
	// ID is the row id: the id the message would be stored under (see msgid).
	ID        uuid.UUID
	MessageID string
	// Reason is a code (invalid_json, too_large, rejected_by_database, delivery_limit,
	// expired, maxlen, rejected); ReasonDetail the rest.
	Reason       string
	ReasonDetail string
	Body         []byte
	// Headers is a JSON object; it must be valid for jsonb (no \u0000).
	Headers []byte
	// DeathKey identifies this dead-lettering: the same DLQ delivery archived again
	// (crash before its ack) carries the same key and is not counted again.
	DeathKey       string
	DeadLetteredAt time.Time
}

// Beginner starts transactions: a pool or a connection.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// archiveSQL inserts new dead letters and counts a new death of a known one. The
// WHERE makes the conflict update skip a row whose death_key is the incoming one: that
// dead-lettering was already counted. Arrays go over in binary; headers as text, cast
// to jsonb by the server. xmax = 0 tells an insert from an update.
const archiveSQL = `
	INSERT INTO dead_letters AS d (tenant_id, id, message_id, reason, reason_detail, body, body_size,
		headers, deaths, death_key, status, first_dead_lettered_at, last_dead_lettered_at)
	SELECT $1::uuid, i, m, r, rd, b, octet_length(b), h::jsonb, 1, k, 'pending', at, at
	FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[], $8::text[], $9::timestamptz[])
		AS u(i, m, r, rd, b, h, k, at)
	ON CONFLICT (tenant_id, id) DO UPDATE SET
		message_id = EXCLUDED.message_id,
		reason = EXCLUDED.reason,
		reason_detail = EXCLUDED.reason_detail,
		body = EXCLUDED.body,
		body_size = EXCLUDED.body_size,
		headers = EXCLUDED.headers,
		deaths = d.deaths + 1,
		death_key = EXCLUDED.death_key,
		status = 'pending',
		last_dead_lettered_at = EXCLUDED.last_dead_lettered_at,
		updated_at = now()
	WHERE d.death_key <> EXCLUDED.death_key
	RETURNING (xmax = 0) AS inserted`

// Result counts what one Archive call changed.
type Result struct {
	Inserted int // new rows
	Died     int // known rows that died again (deaths + 1, back to pending)
	Repeated int // dead-letterings already counted (the same DLQ delivery again)
}

// Archive stores one tenant's batch in a single transaction: every row is committed
// or none, so the caller acks the batch off the DLQ only after Archive returned nil.
// It is idempotent per (row id, death key). A batch may hold the same id more than
// once (a message that died twice before being archived): one statement cannot update
// a row twice, so such repeats go in later statements of the same transaction.
func Archive(ctx context.Context, db Beginner, tenant uuid.UUID, rows []Row) (Result, error) {
	var res Result
	if len(rows) == 0 {
		return res, nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("archive dead letters: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, round := range rounds(rows) {
		ins, upd, err := archiveRound(ctx, tx, tenant, round)
		if err != nil {
			return Result{}, err
		}
		res.Inserted += ins
		res.Died += upd
		res.Repeated += len(round) - ins - upd
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{}, fmt.Errorf("archive dead letters: commit: %w", err)
	}
	return res, nil
}

// rounds splits rows so that no round holds an id twice; a repeat of (id, death key)
// inside the batch is dropped (it would only be skipped by the WHERE).
func rounds(rows []Row) [][]Row {
	type key struct {
		id    uuid.UUID
		death string
	}
	seen := make(map[key]bool, len(rows))
	count := make(map[uuid.UUID]int, len(rows))
	var out [][]Row
	for _, r := range rows {
		k := key{r.ID, r.DeathKey}
		if seen[k] {
			continue
		}
		seen[k] = true
		n := count[r.ID]
		count[r.ID] = n + 1
		if n == len(out) {
			out = append(out, nil)
		}
		out[n] = append(out[n], r)
	}
	return out
}

func archiveRound(ctx context.Context, q Querier, tenant uuid.UUID, rows []Row) (inserted, updated int, err error) {
	ids := make([][16]byte, len(rows))
	msgIDs := make([]string, len(rows))
	reasons := make([]string, len(rows))
	details := make([]string, len(rows))
	bodies := make([][]byte, len(rows))
	headers := make([]string, len(rows))
	keys := make([]string, len(rows))
	at := make([]time.Time, len(rows))
	for i, r := range rows {
		ids[i], msgIDs[i], reasons[i], details[i] = r.ID, r.MessageID, r.Reason, r.ReasonDetail
		bodies[i], keys[i], at[i] = r.Body, r.DeathKey, r.DeadLetteredAt
		if bodies[i] == nil {
			bodies[i] = []byte{} // body is NOT NULL; an empty message is still a message
		}
		headers[i] = string(r.Headers)
		if len(r.Headers) == 0 {
			headers[i] = "{}"
		}
	}
	res, err := q.Query(ctx, archiveSQL, tenant, ids, msgIDs, reasons, details, bodies, headers, keys, at)
	if err != nil {
		return 0, 0, fmt.Errorf("archive %d dead letters: %w", len(rows), err)
	}
	defer res.Close()
	for res.Next() {
		var ins bool
		if err := res.Scan(&ins); err != nil {
			return 0, 0, fmt.Errorf("archive dead letters: scan: %w", err)
		}
		if ins {
			inserted++
		} else {
			updated++
		}
	}
	if err := res.Err(); err != nil {
		return 0, 0, fmt.Errorf("archive %d dead letters: %w", len(rows), err)
	}
	return inserted, updated, nil
}

// PendingByTenant counts every tenant's pending dead letters with one grouped query
// (for a sampled gauge); tenants without any are absent.
func PendingByTenant(ctx context.Context, q Querier) (map[uuid.UUID]int, error) {
	rows, err := q.Query(ctx, `SELECT tenant_id, count(*) FROM dead_letters WHERE status = $1 GROUP BY tenant_id`, StatusPending)
	if err != nil {
		return nil, fmt.Errorf("count pending dead letters: %w", err)
	}
	return scanCounts(rows, map[uuid.UUID]int{})
}

// Execer runs a statement: a pool, connection or transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// ForgetTenant deletes a deleted tenant's archive (its dead letters go with it, like
// its messages). Idempotent.
func ForgetTenant(ctx context.Context, db Execer, tenant uuid.UUID) error {
	if _, err := db.Exec(ctx, `DELETE FROM dead_letters WHERE tenant_id = $1`, tenant); err != nil {
		return fmt.Errorf("forget dead letters of tenant %s: %w", tenant, err)
	}
	return nil
}
