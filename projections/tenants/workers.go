package tenants

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// ReportWorkers records that current workers consume the tenant's queue. The consumer
// calls it when the count changes; readers see it as Tenant.WorkersCurrent. It is not
// derived from events, so replay and Reset leave it alone.
func ReportWorkers(ctx context.Context, db Execer, tenantID uuid.UUID, current int) error {
	_, err := db.Exec(ctx, `
		INSERT INTO tenant_workers (tenant_id, current, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (tenant_id) DO UPDATE SET current = EXCLUDED.current, updated_at = now()`, tenantID, current)
	if err != nil {
		return fmt.Errorf("report %d workers for tenant %s: %w", current, tenantID, err)
	}
	return nil
}

// ForgetWorkers deletes a removed tenant's report, its backlog sample included. Idempotent.
func ForgetWorkers(ctx context.Context, db Execer, tenantID uuid.UUID) error {
	if _, err := db.Exec(ctx, `DELETE FROM tenant_workers WHERE tenant_id = $1`, tenantID); err != nil {
		return fmt.Errorf("forget workers of tenant %s: %w", tenantID, err)
	}
	return nil
}
