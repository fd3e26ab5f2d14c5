package tenants

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Beginner starts transactions (a pool, a connection).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// WorkerReport is what one consumer replica runs on one tenant's queue.
type WorkerReport struct {
	Tenant uuid.UUID
	// Replica is the reporting consumer replica.
	Replica string
	// Current is how many consumers the replica runs on the tenant's queue now.
	Current int
	// Owner: the replica owns the tenant (readers see it as Tenant.Owner).
	Owner bool
}

// lockSummaries creates (when create) and locks the tenants' tenant_workers rows in id
// order. Every writer of tenant_replica_workers takes these locks first, so sums
// computed by a later statement of the same transaction see every committed report and
// no two writers deadlock.
func lockSummaries(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, create bool) error {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if create {
		if _, err := tx.Exec(ctx, `
			INSERT INTO tenant_workers (tenant_id, current, updated_at)
			SELECT id, 0, now() FROM unnest($1::uuid[]) AS id ORDER BY id
			ON CONFLICT (tenant_id) DO NOTHING`, ids); err != nil {
			return fmt.Errorf("create worker summaries: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `
		SELECT 1 FROM tenant_workers WHERE tenant_id = ANY($1::uuid[]) ORDER BY tenant_id FOR UPDATE`, ids); err != nil {
		return fmt.Errorf("lock worker summaries: %w", err)
	}
	return nil
}

// resum rewrites the locked summaries of ids from tenant_replica_workers.
const resum = `
	UPDATE tenant_workers w SET
		current = COALESCE(r.total, 0),
		replicas = COALESCE(r.replicas, '{}'),
		updated_at = now()
	FROM unnest($1::uuid[]) AS t(id)
	LEFT JOIN LATERAL (
		SELECT sum(current)::int AS total, array_agg(replica_id ORDER BY replica_id) AS replicas
		FROM tenant_replica_workers WHERE tenant_id = t.id
	) r ON true
	WHERE w.tenant_id = t.id`

// ReportWorkers records what one replica runs on a tenant's queue; readers see the sum
// over all replicas as Tenant.WorkersCurrent. The consumer calls it when its count
// changes. A report of 0 by a replica that does not own the tenant (one that handed it
// over, or a removed tenant's) never creates the summary row, so it cannot bring back
// a removed tenant's. Not derived from events: replay and Reset leave it alone.
func ReportWorkers(ctx context.Context, db Beginner, r WorkerReport) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := lockSummaries(ctx, tx, []uuid.UUID{r.Tenant}, r.Owner || r.Current > 0); err != nil {
			return err
		}
		var err error
		if r.Current > 0 {
			_, err = tx.Exec(ctx, `
				INSERT INTO tenant_replica_workers (tenant_id, replica_id, current) VALUES ($1, $2, $3)
				ON CONFLICT (tenant_id, replica_id) DO UPDATE SET current = EXCLUDED.current, updated_at = now()`,
				r.Tenant, r.Replica, r.Current)
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM tenant_replica_workers WHERE tenant_id = $1 AND replica_id = $2`, r.Tenant, r.Replica)
		}
		if err != nil {
			return fmt.Errorf("write replica report: %w", err)
		}
		if r.Owner {
			if _, err := tx.Exec(ctx, `UPDATE tenant_workers SET owner = $2 WHERE tenant_id = $1`, r.Tenant, r.Replica); err != nil {
				return fmt.Errorf("set owner: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, resum, []uuid.UUID{r.Tenant}); err != nil {
			return fmt.Errorf("sum replica reports: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("report %d workers of replica %s for tenant %s: %w", r.Current, r.Replica, r.Tenant, err)
	}
	return nil
}

// ForgetReplicas deletes the reports of replicas that left or whose heartbeat expired,
// rewrites the sums of the tenants they ran, and clears them as owners (the new owner's
// first report sets itself). It returns how many tenants were affected. Idempotent.
func ForgetReplicas(ctx context.Context, db Beginner, replicas []string) (int, error) {
	if len(replicas) == 0 {
		return 0, nil
	}
	var n int
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT DISTINCT tenant_id FROM tenant_replica_workers WHERE replica_id = ANY($1)
			UNION SELECT tenant_id FROM tenant_workers WHERE owner = ANY($1)`, replicas)
		if err != nil {
			return fmt.Errorf("find their tenants: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return fmt.Errorf("find their tenants: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := lockSummaries(ctx, tx, ids, false); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tenant_replica_workers WHERE replica_id = ANY($1)`, replicas); err != nil {
			return fmt.Errorf("delete their reports: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE tenant_workers SET owner = NULL WHERE tenant_id = ANY($1::uuid[]) AND owner = ANY($2)`, ids, replicas); err != nil {
			return fmt.Errorf("clear owners: %w", err)
		}
		if _, err := tx.Exec(ctx, resum, ids); err != nil {
			return fmt.Errorf("sum replica reports: %w", err)
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("forget consumer replicas %v: %w", replicas, err)
	}
	return n, nil
}

// ForgetWorkers deletes a removed tenant's reports, its backlog sample included. Idempotent.
func ForgetWorkers(ctx context.Context, db Beginner, tenantID uuid.UUID) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := lockSummaries(ctx, tx, []uuid.UUID{tenantID}, false); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tenant_replica_workers WHERE tenant_id = $1`, tenantID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM tenant_workers WHERE tenant_id = $1`, tenantID)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget workers of tenant %s: %w", tenantID, err)
	}
	return nil
}
