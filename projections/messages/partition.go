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

// EnsurePartition creates the tenant's partition as a plain table and attaches it
// (CREATE ... PARTITION OF would take a lock that blocks every tenant's reads).
// Idempotent: an attached partition is left alone.
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
		return fmt.Errorf("create partition table %s: %w", PartitionName(id), err)
	}
	// id is canonical (hex and dashes only), so the literal cannot carry SQL.
	_, err = db.Exec(ctx, "ALTER TABLE "+Table+" ATTACH PARTITION "+ident+" FOR VALUES IN ('"+id+"')")
	if err != nil {
		// Another process may have attached it between our check and the ALTER.
		if ok, cerr := partitionAttached(ctx, db, id); cerr == nil && ok {
			return nil
		}
		return fmt.Errorf("attach partition %s: %w", PartitionName(id), err)
	}
	return nil
}

// DropPartition detaches and drops the tenant's partition. Missing partitions are fine.
// DETACH ... CONCURRENTLY keeps other tenants' reads and writes flowing; it cannot run
// inside a transaction, so db must not be a transaction.
func DropPartition(ctx context.Context, db DB, tenantID string) error {
	id, err := CanonicalTenantID(tenantID)
	if err != nil {
		return err
	}
	ident := PartitionIdent(id)
	attached, err := partitionAttached(ctx, db, id)
	if err != nil {
		return err
	}
	if attached {
		_, err := db.Exec(ctx, "ALTER TABLE "+Table+" DETACH PARTITION "+ident+" CONCURRENTLY")
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55000" {
			// A previous concurrent detach was interrupted: finish it.
			_, err = db.Exec(ctx, "ALTER TABLE "+Table+" DETACH PARTITION "+ident+" FINALIZE")
		}
		if err != nil {
			return fmt.Errorf("detach partition %s: %w", PartitionName(id), err)
		}
	}
	if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+ident); err != nil {
		return fmt.Errorf("drop partition %s: %w", PartitionName(id), err)
	}
	return nil
}

// DropPartitionWithin is DropPartition with every lock wait bounded by wait (and each
// statement by 3*wait), on a dedicated connection of pool. DETACH ... CONCURRENTLY
// otherwise waits, without limit, for every transaction that touched messages, and
// meanwhile holds a lock that blocks every ATTACH (new tenants). A timeout returns an
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

// PartitionExists reports whether the tenant's partition table exists and is attached.
func PartitionExists(ctx context.Context, db DB, tenantID string) (bool, error) {
	id, err := CanonicalTenantID(tenantID)
	if err != nil {
		return false, err
	}
	return partitionAttached(ctx, db, id)
}

func partitionAttached(ctx context.Context, db DB, id string) (bool, error) {
	var attached bool
	err := db.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			WHERE c.relname = $1 AND i.inhparent = $2::regclass
			  AND c.relnamespace = current_schema()::regnamespace)`,
		PartitionName(id), Table).Scan(&attached)
	if err != nil {
		return false, fmt.Errorf("look up partition %s: %w", PartitionName(id), err)
	}
	return attached, nil
}
