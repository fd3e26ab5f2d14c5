package tenant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/postgres"
)

// Queues declares and removes a tenant's broker queues.
type Queues interface {
	DeclareTenant(ctx context.Context, tenantID string) error
	DeleteTenant(ctx context.Context, tenantID string) error
}

// capacityLockKey is the transaction-level advisory lock under which a command that
// grows a tenant's workers sums the other tenants' claims and writes its own, so two
// such commands never both fit into the same free capacity.
const capacityLockKey int64 = 0x6d746d5f636170 // "mtm_cap"

// Meta is request context recorded on every event.
type Meta struct {
	CorrelationID string
}

// Service handles tenant commands: load the stream, decide, append.
type Service struct {
	store  *eventstore.Store
	db     *sql.DB
	queues Queues
	// accounts is nil when per-tenant broker accounts are off (see WithAccounts).
	accounts Accounts
	limits   Limits
	log      *slog.Logger
	now      func() time.Time
	// republisher and redriveRate are set by WithRedrive.
	republisher Republisher
	redriveRate *rate.Limiter
}

// NewService wires the command handlers. db is the event store's database.
func NewService(store *eventstore.Store, db *sql.DB, queues Queues, limits Limits, log *slog.Logger) *Service {
	return &Service{store: store, db: db, queues: queues, limits: limits, log: log, now: time.Now}
}

// Limits returns the worker limits commands are validated against.
func (s *Service) Limits() Limits { return s.limits }

// Load rebuilds the tenant from its stream; an empty stream gives a zero State.
func (s *Service) Load(ctx context.Context, id string) (State, error) {
	stored, err := s.store.Load(ctx, id)
	if err != nil {
		return State{}, fmt.Errorf("load tenant %s: %w", id, err)
	}
	recs := make([]events.Recorded, len(stored))
	for i, e := range stored {
		recs[i] = e.Recorded
	}
	return Replay(id, recs), nil
}

// Create validates the command, declares the tenant's queues (so a message published
// right after the answer is never lost) and, with accounts on, grants the tenant's broker
// user (so the credentials in the answer work at once), then records TenantCreated and
// claims the name and the workers in one transaction. If the append fails, the queues
// and the user are removed again; after an unknown commit outcome they are removed only
// once the tenant is known not to be recorded. A leftover queue is harmless (nothing
// routes to it) and a leftover user's password was never handed out. The credentials
// are nil with accounts off.
func (s *Service) Create(ctx context.Context, meta Meta, name string, workers *int) (State, *Credentials, error) {
	ev, err := DecideCreate(s.limits, name, workers)
	if err != nil {
		return State{}, nil, err
	}
	// Cheap early check, as for the name below, so a full service declares no queues;
	// claimWorkers in the append transaction is what actually guarantees the bounds.
	// Every live tenant has exactly one claim (at least one worker; deleted with the
	// tenant), so the claims also count the live tenants for MAX_TENANTS.
	var claimed, live int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(sum(workers), 0), count(*) FROM worker_claims`).Scan(&claimed, &live); err != nil {
		return State{}, nil, fmt.Errorf("sum worker claims: %w", err)
	}
	if err := s.limits.CheckTenants(live); err != nil {
		return State{}, nil, err
	}
	if err := s.limits.CheckCapacity(claimed, 0, ev.Workers); err != nil {
		return State{}, nil, err
	}
	// Cheap early check so the common duplicate does not declare queues at all; the
	// unique key in the append transaction is what actually guarantees uniqueness.
	var taken bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM tenant_names WHERE name = $1)`, NameKey(ev.Name)).Scan(&taken); err != nil {
		return State{}, nil, fmt.Errorf("check tenant name: %w", err)
	}
	if taken {
		return State{}, nil, ErrDuplicateName
	}
	id := uuid.Must(uuid.NewV7()).String()
	if err := s.queues.DeclareTenant(ctx, id); err != nil {
		return State{}, nil, fmt.Errorf("%w: declare queues of %s: %w", ErrUnavailable, id, err)
	}
	var creds *Credentials
	if s.accounts != nil {
		c, err := s.accounts.Grant(ctx, id)
		if err != nil {
			// A failed grant may have made the user without its permissions: it goes
			// with the queues.
			s.undoCreate(ctx, id)
			return State{}, nil, fmt.Errorf("%w: grant broker user of %s: %w", ErrUnavailable, id, err)
		}
		creds = &c
	}
	env, err := s.envelope(id, 1, meta, ev)
	if err != nil {
		s.undoCreate(ctx, id)
		return State{}, nil, err
	}
	_, err = s.store.Append(ctx, []events.Envelope{env}, func(ctx context.Context, tx *sql.Tx) error {
		// The capacity lock first: a command waiting for it holds no other lock yet.
		if err := s.claimWorkers(ctx, tx, id, 0, ev.Workers); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tenant_names (name, tenant_id) VALUES ($1, $2)`, NameKey(ev.Name), id)
		if postgres.IsUniqueViolation(err, "tenant_names_pkey") {
			return ErrDuplicateName
		}
		if err != nil {
			return fmt.Errorf("claim tenant name: %w", err)
		}
		return nil
	})
	if err != nil {
		// After an unknown commit outcome the tenant may exist: its queues and user
		// stay unless the store shows it was not recorded (the consumer declares the
		// queues again anyway; the user's password can be rotated).
		if !errors.Is(err, eventstore.ErrCommitUnknown) || s.notRecorded(ctx, id) {
			s.undoCreate(ctx, id)
		}
		return State{}, nil, fmt.Errorf("create tenant %s: %w", id, err)
	}
	return State{}.Apply(1, ev).withID(id), creds, nil
}

func (s State) withID(id string) State { s.ID = id; return s }

// undoCreate removes, best effort, the queues and user of a tenant that was not created.
func (s *Service) undoCreate(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accountCallTimeout)
	defer cancel()
	if err := s.queues.DeleteTenant(ctx, id); err != nil {
		s.log.Warn("could not remove queues of a tenant that was not created", "tenant_id", id, "err", err)
	}
	if s.accounts != nil {
		if err := s.accounts.Delete(ctx, id); err != nil {
			// Nobody ever received its password; an operator may delete it by name.
			s.log.Warn("could not remove the broker user of a tenant that was not created", "tenant_id", id, "err", err)
		}
	}
}

// notRecorded reports whether the store shows, after an unknown commit outcome, that
// the tenant's first event is not there. Any doubt (the database still away) is false.
func (s *Service) notRecorded(ctx context.Context, id string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var recorded bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM event_store WHERE stream_id = $1)`, id).Scan(&recorded)
	if err != nil {
		s.log.Warn("could not tell whether a tenant was recorded; keeping its queues and broker user", "tenant_id", id, "err", err)
		return false
	}
	return !recorded
}

// ChangeConcurrency sets the desired worker count. expected, when set, is the
// version the client last saw (If-Match).
func (s *Service) ChangeConcurrency(ctx context.Context, meta Meta, id string, workers int, expected *int) (State, error) {
	st, err := s.Load(ctx, id)
	if err != nil {
		return State{}, err
	}
	ev, err := DecideConcurrency(s.limits, st, workers, expected)
	if err != nil || ev == nil {
		return st, err
	}
	return s.append(ctx, meta, st, ev, expected, func(ctx context.Context, tx *sql.Tx) error {
		return s.claimWorkers(ctx, tx, id, st.Workers, workers)
	})
}

// claimWorkers records that tenant id now runs workers (it ran current; 0 for a new
// tenant), inside the append transaction. A claim that grows takes the capacity lock
// and checks the other live tenants' claims first (and, for a new tenant, how many
// there are against MAX_TENANTS); the lock is held until the commit, so concurrent
// growing commands see each other's claims. A shrinking claim needs no lock: it can
// only make room, and a command that summed before it merely saw less room than there is.
func (s *Service) claimWorkers(ctx context.Context, tx *sql.Tx, id string, current, workers int) error {
	if workers > current {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, capacityLockKey); err != nil {
			return fmt.Errorf("lock tenant capacity: %w", err)
		}
		var others, live int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(sum(workers), 0), count(*) FROM worker_claims WHERE tenant_id <> $1`, id).Scan(&others, &live); err != nil {
			return fmt.Errorf("sum worker claims: %w", err)
		}
		if current == 0 {
			if err := s.limits.CheckTenants(live); err != nil {
				return err
			}
		}
		if err := s.limits.CheckCapacity(others, current, workers); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO worker_claims (tenant_id, workers) VALUES ($1, $2)
		ON CONFLICT (tenant_id) DO UPDATE SET workers = EXCLUDED.workers`, id, workers)
	if err != nil {
		return fmt.Errorf("claim workers of %s: %w", id, err)
	}
	return nil
}

// ChangeRateLimit records the tenant's own message ingest limit. expected, when set,
// is the version the client last saw (If-Match).
func (s *Service) ChangeRateLimit(ctx context.Context, meta Meta, id string, limit RateLimit, expected *int) (State, error) {
	st, err := s.Load(ctx, id)
	if err != nil {
		return State{}, err
	}
	ev, err := DecideRateLimit(st, limit, expected)
	if err != nil || ev == nil {
		return st, err
	}
	return s.append(ctx, meta, st, ev, expected, nil)
}

// Delete records TenantDeleted and releases the name and the workers and ends any drain
// in the same transaction, then deletes the tenant's broker user (which closes its connections). The
// user goes only after the delete is recorded, so a refused delete never leaves a live
// tenant without it; if the broker does not answer, SweepAccounts deletes it later.
func (s *Service) Delete(ctx context.Context, meta Meta, id string, expected *int) (State, error) {
	st, err := s.Load(ctx, id)
	if err != nil {
		return State{}, err
	}
	ev, err := DecideDelete(st, expected)
	if err != nil {
		return st, err
	}
	st, err = s.append(ctx, meta, st, ev, expected, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tenant_names WHERE tenant_id = $1`, id); err != nil {
			return fmt.Errorf("release tenant name: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM worker_claims WHERE tenant_id = $1`, id); err != nil {
			return fmt.Errorf("release workers: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tenant_drains WHERE tenant_id = $1`, id); err != nil {
			return fmt.Errorf("end drain: %w", err)
		}
		return nil
	})
	if err == nil && s.accounts != nil {
		s.deleteAccount(ctx, id, "tenant deleted")
	}
	return st, err
}

func (s *Service) append(ctx context.Context, meta Meta, st State, ev events.Event, expected *int, extra func(context.Context, *sql.Tx) error) (State, error) {
	env, err := s.envelope(st.ID, st.Version+1, meta, ev)
	if err != nil {
		return State{}, err
	}
	if _, err := s.store.Append(ctx, []events.Envelope{env}, extra); err != nil {
		if errors.Is(err, eventstore.ErrConcurrency) {
			// Another command won this version. With If-Match the client's version is
			// now stale (412); without, it is a plain conflict (409) to retry.
			if expected != nil {
				return State{}, ErrVersionMismatch
			}
			return State{}, ErrConflict
		}
		return State{}, fmt.Errorf("append %s to %s: %w", ev.EventType(), st.ID, err)
	}
	return st.Apply(env.Version, ev), nil
}

func (s *Service) envelope(id string, version int, meta Meta, ev events.Event) (events.Envelope, error) {
	env, err := events.NewEnvelope(id, version, events.Metadata{
		EventID:       uuid.Must(uuid.NewV7()).String(),
		OccurredAt:    s.now().UTC(),
		CorrelationID: meta.CorrelationID,
	}, ev)
	if err != nil {
		return events.Envelope{}, fmt.Errorf("build event: %w", err)
	}
	return env, nil
}
