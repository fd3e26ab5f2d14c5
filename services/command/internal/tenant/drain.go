package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/multitenant/mtm/platform/lifecycle"
)

// QueueProbe tells whether a tenant's work queue is empty: no message ready and none
// delivered but unacknowledged (as far as the probe can see; see broker.DrainProbe).
type QueueProbe interface {
	Empty(ctx context.Context, tenantID string) (bool, error)
}

// drainConfirmations is how many consecutive checks must find a queue empty before
// the tenant is deleted: one empty look can be a moment between a delivery and the
// next publish, or a management API statistic a few seconds old.
const drainConfirmations = 2

// Drains is the drain process manager: it works from tenant_drains (written with
// tenant.deletion_requested.v1, removed with tenant.deleted.v1) and deletes each
// draining tenant whose queue stays empty, through the same path as a plain delete.
// Several command replicas may run it: the delete is appended at the version the
// replica saw draining, so a second replica's append fails (version mismatch) and
// nothing is recorded twice. Past a drain's deadline the row is no longer checked: the
// tenant stays draining until deleted plainly or asked to drain again (a new deadline).
type Drains struct {
	svc   *Service
	probe QueueProbe
	// empties counts each tenant's consecutive empty checks; gaveUp holds the deadline
	// already reported as passed, so it is logged once per drain. Only the one goroutine
	// of Run touches them.
	empties map[string]int
	gaveUp  map[string]time.Time
	failing map[string]bool
}

// NewDrains builds the process manager on probe.
func (s *Service) NewDrains(probe QueueProbe) *Drains {
	return &Drains{svc: s, probe: probe, empties: map[string]int{}, gaveUp: map[string]time.Time{}, failing: map[string]bool{}}
}

// Run checks the drains at once and then every interval until ctx ends. The interval
// is short, so a failure (database away) is logged when it starts and when it ends,
// not on every tick.
func (d *Drains) Run(ctx context.Context, interval time.Duration) {
	failing := false
	lifecycle.Every(ctx, interval, func(ctx context.Context) {
		err := d.Check(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			d.svc.log.Warn("drain check failed, retrying every interval", "err", err, "interval", interval)
			failing = true
		case err == nil && failing:
			d.svc.log.Info("drain checks work again")
			failing = false
		}
	})
}

type drainRow struct {
	id            string
	deadline      time.Time
	correlationID string
}

// Check runs one pass over the drains: each drain before its deadline whose queue was
// found empty drainConfirmations times in a row is completed.
func (d *Drains) Check(ctx context.Context) error {
	drains, err := d.list(ctx)
	if err != nil {
		return err
	}
	live := make(map[string]bool, len(drains))
	now := d.svc.now()
	for _, r := range drains {
		live[r.id] = true
		if !now.Before(r.deadline) {
			delete(d.empties, r.id)
			if !d.gaveUp[r.id].Equal(r.deadline) {
				d.gaveUp[r.id] = r.deadline
				d.svc.log.Warn("drain timed out: the tenant's queue did not empty before the deadline; it stays draining until deleted or asked to drain again",
					"tenant_id", r.id, "deadline", r.deadline, "correlation_id", r.correlationID)
			}
			continue
		}
		if err := d.checkOne(ctx, r); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Logged when a tenant starts failing, not on every tick of an outage.
			if !d.failing[r.id] {
				d.svc.log.Warn("drain check of a tenant failed, will retry", "tenant_id", r.id, "err", err)
			}
			d.failing[r.id] = true
			continue
		}
		delete(d.failing, r.id)
	}
	// Drains that ended (deleted, here or elsewhere) are forgotten.
	forget(d.empties, live)
	forget(d.gaveUp, live)
	forget(d.failing, live)
	return nil
}

func forget[V any](m map[string]V, live map[string]bool) {
	for id := range m {
		if !live[id] {
			delete(m, id)
		}
	}
}

func (d *Drains) list(ctx context.Context) ([]drainRow, error) {
	rows, err := d.svc.db.QueryContext(ctx, `SELECT tenant_id::text, deadline, correlation_id FROM tenant_drains ORDER BY requested_at`)
	if err != nil {
		return nil, fmt.Errorf("list drains: %w", err)
	}
	defer rows.Close()
	var drains []drainRow
	for rows.Next() {
		var r drainRow
		if err := rows.Scan(&r.id, &r.deadline, &r.correlationID); err != nil {
			return nil, fmt.Errorf("list drains: %w", err)
		}
		drains = append(drains, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list drains: %w", err)
	}
	return drains, nil
}

func (d *Drains) checkOne(ctx context.Context, r drainRow) error {
	empty, err := d.probe.Empty(ctx, r.id)
	if err != nil {
		delete(d.empties, r.id)
		return err
	}
	if !empty {
		delete(d.empties, r.id)
		return nil
	}
	d.empties[r.id]++
	if d.empties[r.id] < drainConfirmations {
		return nil
	}
	delete(d.empties, r.id)
	return d.svc.completeDrain(ctx, Meta{CorrelationID: r.correlationID}, r.id)
}

// completeDrain deletes a tenant that is still draining, at the version it was seen
// draining: a concurrent plain delete or another replica's completion makes this
// append fail, which is no error here.
func (s *Service) completeDrain(ctx context.Context, meta Meta, id string) error {
	st, err := s.Load(ctx, id)
	if err != nil {
		return err
	}
	if st.Status != StatusDraining {
		return nil
	}
	version := st.Version
	_, err = s.Delete(ctx, meta, id, &version)
	switch {
	case err == nil:
		s.log.Info("drained tenant deleted", "tenant_id", id, "correlation_id", meta.CorrelationID)
		return nil
	case errors.Is(err, ErrVersionMismatch), errors.Is(err, ErrNotFound):
		return nil
	}
	return err
}
