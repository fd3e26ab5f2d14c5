// Package tenants is the query-side tenant read model: the `tenants` table built from
// the tenant events, joined with what the consumer reports of each tenant's queue
// (`tenant_workers`: worker counts written by ReportWorkers and ForgetWorkers, backlog
// samples written by BacklogReporter).
package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/projections/cursor"
)

// ProjectionName is this projection's row in projection_checkpoints.
const ProjectionName = "tenants"

// Statuses of a tenant in the read model.
const (
	StatusActive = "active"
	// StatusPaused: the consumer runs none of its workers; the queue keeps accepting.
	StatusPaused = "paused"
	// StatusDraining: deletion requested; the consumer stores what is queued, then the
	// tenant is deleted (or, past its deadline, stays draining).
	StatusDraining = "draining"
	// StatusDeleted rows stay in the table so a replay rebuilds exactly the same state;
	// readers never see them.
	StatusDeleted = "deleted"
)

// ErrNotFound means no such tenant, or a deleted one.
var ErrNotFound = errors.New("tenant not found")

// ErrInvalidEvent means an event can never be applied (its tenant id is not a UUID);
// retrying cannot help, so callers skip it.
var ErrInvalidEvent = errors.New("invalid tenant event")

// Querier is what reads need: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Execer is what Apply needs: pgx.Tx satisfies it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// RateLimit is a tenant's own message ingest limit: PerSecond messages per second with
// bursts of up to Burst; PerSecond 0 means unlimited.
type RateLimit struct {
	PerSecond int
	Burst     int
}

// Tenant is one tenant as readers see it.
type Tenant struct {
	ID             uuid.UUID
	Name           string
	Status         string
	WorkersDesired int
	// WorkersCurrent is the sum of what the consumer replicas report they run (0
	// before the first report).
	WorkersCurrent int
	// Owner is the consumer replica that owns the tenant ("" before its first report).
	Owner string
	// Replicas are the consumer replicas running the tenant's consumers now: the owner,
	// and during a hand-over briefly the previous one too.
	Replicas []string
	// Backlog is the consumer's latest sample of the tenant's queue (nil before its
	// first sample).
	Backlog *Backlog
	// RateLimit is the tenant's own ingest limit; nil: the command service's default.
	RateLimit *RateLimit
	// Drain is set while the tenant is draining.
	Drain     *Drain
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Drain is a draining tenant's drain-then-delete: asked for at RequestedAt, given up on
// (the tenant then stays draining) after Deadline.
type Drain struct {
	RequestedAt time.Time
	Deadline    time.Time
}

// Position is the keyset position just after t in the tenant list.
func (t Tenant) Position() cursor.Position {
	return cursor.Position{CreatedAt: t.CreatedAt, ID: t.ID}
}

// Row is a tenant as the read model stores it (without the consumer's worker report).
type Row struct {
	ID             uuid.UUID
	Name           string
	Status         string
	WorkersDesired int
	RateLimit      *RateLimit // nil: none of its own
	Drain          *Drain     // set by a deletion request; kept if the tenant is then deleted
	Version        int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Target returns the tenant an event is about. ok is false for an event of unknown
// type (rec.Event nil): it changes no row, only the checkpoint moves past it. An event
// whose tenant id is not a UUID is ErrInvalidEvent: it can never apply.
func Target(position int64, rec events.Recorded) (id uuid.UUID, ok bool, err error) {
	if rec.Event == nil {
		return uuid.Nil, false, nil
	}
	id, err = uuid.Parse(rec.TenantID)
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("%w at position %d: tenant id %q is not a UUID", ErrInvalidEvent, position, rec.TenantID)
	}
	return id, true, nil
}

// Next is the one place that decides what an event does to a tenant row; the live
// projection (Apply) and the in-memory replay (Rebuild) both use it, so they cannot
// disagree. cur is the tenant's row before the event (nil: none yet). It returns the
// row after the event and whether it changed; unchanged means the event is a no-op.
// Idempotent by stream version: a creation never overwrites an existing row, and a
// change applies only to an existing row with an older version.
func Next(cur *Row, id uuid.UUID, rec events.Recorded) (Row, bool, error) {
	at := rec.Metadata.OccurredAt.UTC()
	switch e := rec.Event.(type) {
	case events.TenantCreated:
		if cur != nil {
			return *cur, false, nil
		}
		return Row{ID: id, Name: e.Name, Status: StatusActive, WorkersDesired: e.Workers,
			Version: rec.Version, CreatedAt: at, UpdatedAt: at}, true, nil
	case events.TenantConcurrencyChanged:
		if cur == nil || cur.Version >= rec.Version {
			return zeroOr(cur), false, nil
		}
		next := *cur
		next.WorkersDesired, next.Version, next.UpdatedAt = e.Workers, rec.Version, at
		return next, true, nil
	case events.TenantDeleted:
		if cur == nil || cur.Version >= rec.Version {
			return zeroOr(cur), false, nil
		}
		next := *cur
		next.Status, next.Version, next.UpdatedAt = StatusDeleted, rec.Version, at
		return next, true, nil
	case events.TenantRateLimitChanged:
		if cur == nil || cur.Version >= rec.Version {
			return zeroOr(cur), false, nil
		}
		next := *cur
		next.RateLimit = &RateLimit{PerSecond: e.PerSecond, Burst: e.Burst}
		next.Version, next.UpdatedAt = rec.Version, at
		return next, true, nil
	case events.TenantPaused:
		if cur == nil || cur.Version >= rec.Version {
			return zeroOr(cur), false, nil
		}
		next := *cur
		// Precedence deleted > draining > paused > active: a pause never undoes a drain
		// or a deletion (the command service refuses one, a replay must agree).
		if next.Status == StatusActive {
			next.Status = StatusPaused
		}
		next.Version, next.UpdatedAt = rec.Version, at
		return next, true, nil
	case events.TenantResumed:
		if cur == nil || cur.Version >= rec.Version {
			return zeroOr(cur), false, nil
		}
		next := *cur
		if next.Status == StatusPaused {
			next.Status = StatusActive
		}
		next.Version, next.UpdatedAt = rec.Version, at
		return next, true, nil
	case events.TenantDeletionRequested:
		if cur == nil || cur.Version >= rec.Version {
			return zeroOr(cur), false, nil
		}
		next := *cur
		if next.Status != StatusDeleted {
			// A second request on a draining tenant re-arms it: a new deadline from now.
			next.Status = StatusDraining
			next.Drain = &Drain{RequestedAt: at, Deadline: e.Deadline.UTC()}
		}
		next.Version, next.UpdatedAt = rec.Version, at
		return next, true, nil
	case events.DeadLettersRedriven, events.DeadLettersPurged:
		// Visible in the dead letters themselves, not on the tenant row; the version
		// still moves so ETags and If-Match stay in step with the stream.
		if cur == nil || cur.Version >= rec.Version {
			return zeroOr(cur), false, nil
		}
		next := *cur
		next.Version, next.UpdatedAt = rec.Version, at
		return next, true, nil
	default:
		return zeroOr(cur), false, fmt.Errorf("%s v%d of %s: unhandled event type %T", rec.Type, rec.Version, id, e)
	}
}

func zeroOr(cur *Row) Row {
	if cur == nil {
		return Row{}
	}
	return *cur
}

// Tx is what Apply needs: pgx.Tx satisfies it.
type Tx interface {
	Execer
	Querier
}

// Apply applies one event, stored at position, inside tx and records position in the
// checkpoint. It locks the tenant's row, lets Next decide, and writes only a change.
// It is idempotent by stream version (see Next), so redelivery and replay are safe.
// Events of unknown types (rec.Event nil) only advance the checkpoint. It reports
// whether the read model changed.
func Apply(ctx context.Context, tx Tx, position int64, rec events.Recorded) (bool, error) {
	id, ok, err := Target(position, rec)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, SaveCheckpoint(ctx, tx, position)
	}
	row, found, err := lockRow(ctx, tx, id)
	if err != nil {
		return false, err
	}
	var cur *Row
	if found {
		cur = &row
	}
	next, changed, err := Next(cur, id, rec)
	if err != nil {
		return false, fmt.Errorf("event at position %d: %w", position, err)
	}
	if changed {
		// The writes repeat Next's guards, so a row that appeared or moved on since the
		// lock (a concurrent creation is not blocked by FOR UPDATE) is never overwritten.
		var tag pgconn.CommandTag
		perSecond, burst := next.RateLimit.columns()
		drainAt, drainDeadline := next.Drain.columns()
		if cur == nil {
			tag, err = tx.Exec(ctx, `
				INSERT INTO tenants (id, name, status, workers_desired, rate_per_second, rate_burst,
					drain_requested_at, drain_deadline, version, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
				ON CONFLICT (id) DO NOTHING`,
				next.ID, next.Name, next.Status, next.WorkersDesired, perSecond, burst,
				drainAt, drainDeadline, next.Version, next.CreatedAt, next.UpdatedAt)
		} else {
			tag, err = tx.Exec(ctx, `
				UPDATE tenants SET name = $2, status = $3, workers_desired = $4, rate_per_second = $5, rate_burst = $6,
					drain_requested_at = $7, drain_deadline = $8, version = $9, updated_at = $10
				WHERE id = $1 AND version < $9`,
				next.ID, next.Name, next.Status, next.WorkersDesired, perSecond, burst,
				drainAt, drainDeadline, next.Version, next.UpdatedAt)
		}
		if err != nil {
			return false, fmt.Errorf("apply %s v%d of %s: %w", rec.Type, rec.Version, id, err)
		}
		changed = tag.RowsAffected() > 0
	}
	if err := SaveCheckpoint(ctx, tx, position); err != nil {
		return false, err
	}
	return changed, nil
}

// lockRow reads a tenant's row for update; found is false when there is none.
func lockRow(ctx context.Context, q Querier, id uuid.UUID) (r Row, found bool, err error) {
	var perSecond, burst *int
	var drainAt, drainDeadline *time.Time
	err = q.QueryRow(ctx, `SELECT id, name, status, workers_desired, rate_per_second, rate_burst,
			drain_requested_at, drain_deadline, version, created_at, updated_at
		FROM tenants WHERE id = $1 FOR UPDATE`, id).
		Scan(&r.ID, &r.Name, &r.Status, &r.WorkersDesired, &perSecond, &burst, &drainAt, &drainDeadline, &r.Version, &r.CreatedAt, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Row{}, false, nil
	}
	if err != nil {
		return Row{}, false, fmt.Errorf("lock tenant %s: %w", id, err)
	}
	r.RateLimit = rateLimitOf(perSecond, burst)
	r.Drain = drainOf(drainAt, drainDeadline)
	return r, true, nil
}

// columns are the nullable rate_per_second and rate_burst values of r (nil: NULL).
func (r *RateLimit) columns() (perSecond, burst *int) {
	if r == nil {
		return nil, nil
	}
	return &r.PerSecond, &r.Burst
}

// rateLimitOf reads the two nullable columns back (a CHECK keeps them NULL together).
func rateLimitOf(perSecond, burst *int) *RateLimit {
	if perSecond == nil || burst == nil {
		return nil
	}
	return &RateLimit{PerSecond: *perSecond, Burst: *burst}
}

// columns are the nullable drain_requested_at and drain_deadline values of d (nil: NULL).
func (d *Drain) columns() (requestedAt, deadline *time.Time) {
	if d == nil {
		return nil, nil
	}
	return &d.RequestedAt, &d.Deadline
}

// drainOf reads the two nullable drain columns back.
func drainOf(requestedAt, deadline *time.Time) *Drain {
	if requestedAt == nil || deadline == nil {
		return nil
	}
	return &Drain{RequestedAt: requestedAt.UTC(), Deadline: deadline.UTC()}
}

// backlogOf reads the four nullable backlog columns back (a CHECK keeps them NULL
// together; all NULL: no sample yet).
func backlogOf(ready, unacked *int64, lag *float64, sampledAt *time.Time) *Backlog {
	if ready == nil || unacked == nil || lag == nil || sampledAt == nil {
		return nil
	}
	return &Backlog{Ready: *ready, Unacked: *unacked, LagSeconds: *lag, SampledAt: sampledAt.UTC()}
}

// SaveCheckpoint records that the projection has applied position. Positions can
// commit out of order (a bigserial is taken before commit), so it never moves back.
func SaveCheckpoint(ctx context.Context, tx Execer, position int64) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO projection_checkpoints (name, position, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (name) DO UPDATE
		SET position = GREATEST(projection_checkpoints.position, EXCLUDED.position), updated_at = now()`,
		ProjectionName, position)
	if err != nil {
		return fmt.Errorf("save %s checkpoint %d: %w", ProjectionName, position, err)
	}
	return nil
}

// Checkpoint returns the last applied event store position (0 before the first event).
func Checkpoint(ctx context.Context, q Querier) (int64, error) {
	var pos int64
	err := q.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1`, ProjectionName).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s checkpoint: %w", ProjectionName, err)
	}
	return pos, nil
}

// Reset empties the read model and its checkpoint (inside the replay transaction).
// tenant_workers is not touched: the consumer reports it live (ReportWorkers).
func Reset(ctx context.Context, tx Execer) error {
	if _, err := tx.Exec(ctx, `TRUNCATE tenants`); err != nil {
		return fmt.Errorf("truncate tenants: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, ProjectionName); err != nil {
		return fmt.Errorf("reset %s checkpoint: %w", ProjectionName, err)
	}
	return nil
}

const selectTenant = `SELECT t.id, t.name, t.status, t.workers_desired, COALESCE(w.current, 0), COALESCE(w.owner, ''), COALESCE(w.replicas, '{}'),
	w.ready, w.unacked, w.lag_seconds, w.sampled_at, t.rate_per_second, t.rate_burst, t.drain_requested_at, t.drain_deadline, t.version, t.created_at, t.updated_at
FROM tenants t LEFT JOIN tenant_workers w ON w.tenant_id = t.id`

// Get returns a live tenant; deleted and unknown tenants are ErrNotFound.
func Get(ctx context.Context, q Querier, id uuid.UUID) (Tenant, error) {
	rows, err := q.Query(ctx, selectTenant+` WHERE t.id = $1 AND t.status <> $2`, id, StatusDeleted)
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", id, err)
	}
	list, err := scanTenants(rows)
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", id, err)
	}
	if len(list) == 0 {
		return Tenant{}, ErrNotFound
	}
	return list[0], nil
}

// Exists reports whether id is a live tenant, without the worker join.
func Exists(ctx context.Context, q Querier, id uuid.UUID) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1 AND status <> $2)`, id, StatusDeleted).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up tenant %s: %w", id, err)
	}
	return ok, nil
}

// Scope is which tenants a list may show. The zero Scope shows none: every tenant is
// only ever listed when asked for explicitly (AllTenants, for admins), so no id value
// (the nil UUID included) can widen a tenant's view.
type Scope struct {
	all    bool
	tenant uuid.UUID
}

// AllTenants lists every live tenant.
func AllTenants() Scope { return Scope{all: true} }

// OnlyTenant lists at most the tenant id (a tenant principal sees only itself).
func OnlyTenant(id uuid.UUID) Scope { return Scope{tenant: id} }

// List returns up to limit live tenants of scope after position after (nil: from the
// first), oldest first by (created_at, id), and whether more follow. Keyset on the
// (created_at, id) index: a page costs the same at any depth.
func List(ctx context.Context, q Querier, after *cursor.Position, limit int, scope Scope) ([]Tenant, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("page limit must be positive, got %d", limit)
	}
	if !scope.all && scope.tenant == uuid.Nil {
		return []Tenant{}, false, nil
	}
	where := ` WHERE t.status <> $1`
	args := []any{StatusDeleted}
	if !scope.all {
		args = append(args, scope.tenant)
		where += fmt.Sprintf(` AND t.id = $%d`, len(args))
	}
	if after != nil {
		args = append(args, after.CreatedAt, after.ID)
		where += fmt.Sprintf(` AND (t.created_at, t.id) > ($%d, $%d)`, len(args)-1, len(args))
	}
	args = append(args, limit+1)
	rows, err := q.Query(ctx, selectTenant+where+fmt.Sprintf(` ORDER BY t.created_at, t.id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("list tenants: %w", err)
	}
	list, err := scanTenants(rows)
	if err != nil {
		return nil, false, fmt.Errorf("list tenants: %w", err)
	}
	if len(list) > limit {
		return list[:limit], true, nil
	}
	return list, false, nil
}

func scanTenants(rows pgx.Rows) ([]Tenant, error) {
	defer rows.Close()
	var out []Tenant
	for rows.Next() {
		var t Tenant
		var perSecond, burst *int
		var drainAt, drainDeadline *time.Time
		var ready, unacked *int64
		var lag *float64
		var sampledAt *time.Time
		if err := rows.Scan(&t.ID, &t.Name, &t.Status, &t.WorkersDesired, &t.WorkersCurrent, &t.Owner, &t.Replicas,
			&ready, &unacked, &lag, &sampledAt, &perSecond, &burst, &drainAt, &drainDeadline, &t.Version, &t.CreatedAt, &t.UpdatedAt); err != nil {
			return nil, fmt.Errorf("scan tenant: %w", err)
		}
		if len(t.Replicas) == 0 {
			t.Replicas = nil
		}
		t.RateLimit = rateLimitOf(perSecond, burst)
		t.Backlog = backlogOf(ready, unacked, lag, sampledAt)
		if t.Status == StatusDraining {
			t.Drain = drainOf(drainAt, drainDeadline)
		}
		t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
