package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/multitenant/mtm/platform/lifecycle"
)

// Credentials are a tenant's own broker account. The password is handed out once, in
// the answer that created or rotated it, and kept nowhere.
type Credentials struct {
	Username string
	Password string
	VHost    string
}

// Accounts manages tenants' own broker users. The user name is a function of the
// tenant id, so no event records it: the broker is the one place it exists, and keeping
// it there in step with the events (create before the tenant is recorded, delete after
// it is deleted, a sweep for what failed) is this package's job.
type Accounts interface {
	// Grant creates the tenant's user with a fresh password, or gives the existing
	// user one, with the tenant's permissions.
	Grant(ctx context.Context, tenantID string) (Credentials, error)
	// Disconnect closes the connections the user opened with an older password.
	Disconnect(ctx context.Context, tenantID string) error
	// Delete removes the user; a missing user is success.
	Delete(ctx context.Context, tenantID string) error
	// Tenants lists the tenant ids that have a user.
	Tenants(ctx context.Context) ([]string, error)
}

// Errors of the broker account commands.
var (
	// ErrAccountsDisabled: no Accounts were configured (RABBITMQ_MANAGEMENT_URL unset).
	ErrAccountsDisabled = errors.New("per-tenant broker accounts are disabled")
	// ErrNotRotated: the broker did not take the new credentials. The old password may
	// already have stopped working; rotating again is safe.
	ErrNotRotated = errors.New("broker credentials not rotated")
)

// accountCallTimeout bounds a clean-up that runs after the request's outcome is decided:
// it must not depend on the client still waiting, nor hold the answer up for long.
const accountCallTimeout = 5 * time.Second

// WithAccounts turns per-tenant broker accounts on: Create grants the new tenant's
// user before the tenant is recorded, Delete removes it, RotateCredentials replaces its
// password, and SweepAccounts removes what a failed removal left.
func (s *Service) WithAccounts(a Accounts) *Service {
	s.accounts = a
	return s
}

// AccountsEnabled reports whether tenants get their own broker user.
func (s *Service) AccountsEnabled() bool { return s.accounts != nil }

// RotateCredentials gives a live tenant's user a new password (creating the user if
// the tenant has none, e.g. it was created while accounts were off) and closes the
// connections opened with the old one. Nothing is recorded in the event store: the
// rotation is logged with the correlation id.
func (s *Service) RotateCredentials(ctx context.Context, meta Meta, id string) (Credentials, error) {
	if s.accounts == nil {
		return Credentials{}, ErrAccountsDisabled
	}
	st, err := s.Load(ctx, id)
	if err != nil {
		return Credentials{}, err
	}
	if !st.Exists() {
		return Credentials{}, ErrNotFound
	}
	creds, err := s.accounts.Grant(ctx, id)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: %w", ErrNotRotated, err)
	}
	if err := s.accounts.Disconnect(ctx, id); err != nil {
		return Credentials{}, fmt.Errorf("%w: %w", ErrNotRotated, err)
	}
	// A delete that ran between the load and the grant removed the user before the
	// grant made it again: look once more, so no deleted tenant keeps an account.
	st, err = s.Load(ctx, id)
	if err != nil {
		return Credentials{}, err
	}
	if !st.Exists() {
		s.deleteAccount(ctx, id, "tenant deleted during credential rotation")
		return Credentials{}, ErrNotFound
	}
	s.log.Info("broker credentials rotated", "tenant_id", id, "user", creds.Username, "correlation_id", meta.CorrelationID)
	return creds, nil
}

// deleteAccount removes the tenant's user after the request's outcome is decided; a
// failure is logged and left to SweepAccounts.
func (s *Service) deleteAccount(ctx context.Context, id, why string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accountCallTimeout)
	defer cancel()
	if err := s.accounts.Delete(ctx, id); err != nil {
		s.log.Warn("could not delete broker user, the sweep will retry", "tenant_id", id, "why", why, "err", err)
	}
}

// SweepAccounts deletes the users of tenants this event store records as deleted: a
// removal that failed when the tenant was deleted (broker management API away) is
// finished here. Users of tenants the store does not know at all are left alone: they
// may belong to a creation still in flight, or to another deployment on the same broker.
// It returns how many users it deleted.
func (s *Service) SweepAccounts(ctx context.Context) (int, error) {
	if s.accounts == nil {
		return 0, nil
	}
	// Users first, then the database: a tenant deleted in between is caught next time.
	ids, err := s.accounts.Tenants(ctx)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	deleted, err := s.deletedAmong(ctx, ids)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range deleted {
		if err := s.accounts.Delete(ctx, id); err != nil {
			return n, err
		}
		s.log.Info("deleted broker user of a deleted tenant", "tenant_id", id)
		n++
	}
	return n, nil
}

// deletedAmong returns the ids of ids whose tenant the event store records as deleted:
// a stream exists and no live name is claimed (the name is claimed and released in the
// same transactions as the creation and the deletion).
func (s *Service) deletedAmong(ctx context.Context, ids []string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT s.id::text
		FROM unnest($1::uuid[]) AS s(id)
		WHERE EXISTS (SELECT 1 FROM event_store e WHERE e.stream_id = s.id)
		  AND NOT EXISTS (SELECT 1 FROM tenant_names n WHERE n.tenant_id = s.id)`, ids)
	if err != nil {
		return nil, fmt.Errorf("find deleted tenants with broker users: %w", err)
	}
	defer rows.Close()
	var deleted []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find deleted tenants with broker users: %w", err)
		}
		deleted = append(deleted, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find deleted tenants with broker users: %w", err)
	}
	return deleted, nil
}

// RunAccountSweeper runs SweepAccounts at once and then every interval until ctx ends.
func (s *Service) RunAccountSweeper(ctx context.Context, interval time.Duration) {
	lifecycle.Every(ctx, interval, func(ctx context.Context) {
		if _, err := s.SweepAccounts(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("broker user sweep failed, will retry", "err", err, "retry_in", interval)
		}
	})
}
