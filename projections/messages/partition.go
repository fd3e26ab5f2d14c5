package messages

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is what partition management needs from a pool or connection.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CanonicalTenantID validates that id is a UUID and returns its canonical lowercase
// form. The result is safe to embed as a SQL literal: it only holds hex digits and dashes.
func CanonicalTenantID(id string) (string, error) {
	var u pgtype.UUID
	if err := u.Scan(id); err != nil || !u.Valid {
		return "", fmt.Errorf("tenant id %q is not a UUID", id)
	}
	b := u.Bytes
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// EnsurePartition creates the tenant's partition as a plain table and attaches it to
// the hash sub-parent its tenant id falls into (CREATE ... PARTITION OF would take a
// lock that blocks every reader of that sub-parent). Attaching to a sub-parent of
// ~1/64 of the tenants, not to messages itself, keeps the cost of an attach (and of the
// partition descriptor every backend rebuilds after it) independent of the tenant count,
// and lets attaches of tenants in different sub-parents run in parallel.
// Idempotent and safe to run concurrently, also for one tenant: an attached partition
// is left alone.
func EnsurePartition(ctx context.Context, db DB, tenantID string) error {
	id, err := CanonicalTenantID(tenantID)
	if err != nil {
		return err
	}
	attached, err := partitionAttached(ctx, db, id)
	if err != nil || attached {
		return err
	}
	ident := PartitionIdent(id)
	if _, err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+ident+
		" (LIKE "+Table+" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"); err != nil {
		// IF NOT EXISTS is not atomic: a concurrent create of the same table fails
		// on the catalog's unique index instead. The table exists then, which is all
		// this step needs.
		var exists bool
		if cerr := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ident).Scan(&exists); cerr != nil || !exists {
			return fmt.Errorf("create partition table %s: %w", PartitionName(id), err)
		}
	}
	parent, err := subParent(ctx, db, id)
	if err != nil {
		return err
	}
	// id is canonical (hex and dashes only), so the literal cannot carry SQL.
	_, err = db.Exec(ctx, "ALTER TABLE "+parent+" ATTACH PARTITION "+ident+" FOR VALUES IN ('"+id+"')")
	if err != nil {
		// Another process may have attached it between our check and the ALTER.
		if ok, cerr := partitionAttached(ctx, db, id); cerr == nil && ok {
			return nil
		}
		return fmt.Errorf("attach partition %s to %s: %w", PartitionName(id), parent, err)
	}
	return nil
}

// subParent returns the SQL name of the hash sub-parent of messages whose bound accepts
// the tenant id. Postgres decides (satisfies_hash_partition is the check its own hash
// partition constraints use): an empty table attaches to any sub-parent without error,
// and a leaf under the wrong one would never receive its tenant's rows.
func subParent(ctx context.Context, db DB, id string) (string, error) {
	var parent string
	err := db.QueryRow(ctx, `
		SELECT c.oid::regclass::text
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid,
		LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\d+), remainder (\d+)') AS b
		WHERE i.inhparent = $1::regclass
		  AND satisfies_hash_partition($1::regclass, b[1]::int, b[2]::int, $2::uuid)`,
		Table, id).Scan(&parent)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("no hash sub-parent of %s accepts tenant %s: is the two-level migration applied?", Table, id)
	}
	if err != nil {
		return "", fmt.Errorf("look up sub-parent of partition %s: %w", PartitionName(id), err)
	}
	return parent, nil
}

// DropPartition detaches the tenant's partition from its sub-parent and drops it.
// Missing partitions are fine. DETACH ... CONCURRENTLY keeps other tenants' reads and
// writes flowing; it cannot run inside a transaction, so db must not be a transaction.
func DropPartition(ctx context.Context, db DB, tenantID string) error {
	id, err := CanonicalTenantID(tenantID)
	if err != nil {
		return err
	}
	ident := PartitionIdent(id)
	parent, err := partitionParent(ctx, db, id)
	if err != nil {
		return err
	}
	if parent != "" {
		_, err := db.Exec(ctx, "ALTER TABLE "+parent+" DETACH PARTITION "+ident+" CONCURRENTLY")
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55000" {
			// A previous concurrent detach was interrupted: finish it.
			_, err = db.Exec(ctx, "ALTER TABLE "+parent+" DETACH PARTITION "+ident+" FINALIZE")
		}
		if err != nil {
			return fmt.Errorf("detach partition %s from %s: %w", PartitionName(id), parent, err)
		}
	}
	if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+ident); err != nil {
		return fmt.Errorf("drop partition %s: %w", PartitionName(id), err)
	}
	return nil
}

// DropPartitionWithin is DropPartition with every lock wait bounded by wait (and each
// statement by 3*wait), on a dedicated connection of pool. DETACH ... CONCURRENTLY
// otherwise waits, without limit, for every transaction that touched the tenant's
// sub-parent (any scan of all of messages does), and meanwhile holds a lock that blocks
// every ATTACH to that sub-parent (new tenants of the same hash bucket). A timeout returns an
// error and leaves the partition pending detach; the next call finishes it (FINALIZE).
func DropPartitionWithin(ctx context.Context, pool *pgxpool.Pool, tenantID string, wait time.Duration) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("drop partition: acquire connection: %w", err)
	}
	// The session settings must not leak to the pool's other users: the connection is
	// taken out of the pool and closed afterwards (tenant deletion is rare).
	defer func() {
		pc := conn.Hijack()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = pc.Close(cctx)
	}()
	ms := strconv.FormatInt(max(wait.Milliseconds(), 1), 10)
	if _, err := conn.Exec(ctx, `SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)`,
		ms, strconv.FormatInt(3*max(wait.Milliseconds(), 1), 10)); err != nil {
		return fmt.Errorf("drop partition: set timeouts: %w", err)
	}
	return DropPartition(ctx, conn, tenantID)
}

// PartitionExists reports whether the tenant's partition table exists and is attached
// (to a sub-parent of messages).
func PartitionExists(ctx context.Context, db DB, tenantID string) (bool, error) {
	id, err := CanonicalTenantID(tenantID)
	if err != nil {
		return false, err
	}
	return partitionAttached(ctx, db, id)
}

func partitionAttached(ctx context.Context, db DB, id string) (bool, error) {
	parent, err := partitionParent(ctx, db, id)
	return parent != "", err
}

// partitionParent returns the SQL name of the sub-parent the tenant's partition is
// attached to (also while a concurrent detach is pending), or "" when it is not
// attached. It reads pg_inherits only: pg_partition_tree would lock every partition.
func partitionParent(ctx context.Context, db DB, id string) (string, error) {
	var parent string
	err := db.QueryRow(ctx, `
		SELECT leaf.inhparent::regclass::text
		FROM pg_class c
		JOIN pg_inherits leaf ON leaf.inhrelid = c.oid
		JOIN pg_inherits sub ON sub.inhrelid = leaf.inhparent
		WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace
		  AND sub.inhparent = $2::regclass`,
		PartitionName(id), Table).Scan(&parent)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up partition %s: %w", PartitionName(id), err)
	}
	return parent, nil
}
