package tenant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/multitenant/mtm/events"
	"github.com/multitenant/mtm/projections/deadletters"
)

// Pause records tenant.paused.v1: the consumer stops the tenant's workers after their
// in-flight messages commit, and the queue keeps accepting. A paused tenant answers its
// current state and records nothing.
func (s *Service) Pause(ctx context.Context, meta Meta, id string, expected *int) (State, error) {
	return s.decideAndAppend(ctx, meta, id, expected, DecidePause)
}

// Resume records tenant.resumed.v1: the consumer runs the desired workers again. An
// active tenant answers its current state and records nothing.
func (s *Service) Resume(ctx context.Context, meta Meta, id string, expected *int) (State, error) {
	return s.decideAndAppend(ctx, meta, id, expected, DecideResume)
}

func (s *Service) decideAndAppend(ctx context.Context, meta Meta, id string, expected *int, decide func(State, *int) (events.Event, error)) (State, error) {
	st, err := s.Load(ctx, id)
	if err != nil {
		return State{}, err
	}
	ev, err := decide(st, expected)
	if err != nil || ev == nil {
		return st, err
	}
	return s.append(ctx, meta, st, ev, expected, nil)
}

// WriteRevoker is implemented by Accounts that can take a tenant user's right to
// publish away (and close its connections, whose channels keep a permission cache).
type WriteRevoker interface {
	RevokeWrite(ctx context.Context, tenantID string) error
}

// RequestDeletion records tenant.deletion_requested.v1 and, in the same transaction,
// the tenant's row in tenant_drains, which the drain process manager (RunDrains) works
// from: it records tenant.deleted.v1 once the queue is empty, or gives up at the
// deadline. Asked again, the deadline is re-armed. With per-tenant broker accounts on,
// the tenant's user loses its write permission and its connections, so AMQP producers
// cannot add to a queue that is being emptied; nothing restores it (the tenant is going
// away, and a plain delete removes the user anyway). A failure there is logged only: the
// drain itself is recorded.
func (s *Service) RequestDeletion(ctx context.Context, meta Meta, id string, timeout time.Duration, expected *int) (State, error) {
	st, err := s.Load(ctx, id)
	if err != nil {
		return State{}, err
	}
	now := s.now()
	ev, err := DecideDrain(st, timeout, now, expected)
	if err != nil {
		return st, err
	}
	st, err = s.append(ctx, meta, st, ev, expected, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO tenant_drains (tenant_id, requested_at, deadline, correlation_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO UPDATE
			SET requested_at = EXCLUDED.requested_at, deadline = EXCLUDED.deadline, correlation_id = EXCLUDED.correlation_id`,
			id, now.UTC(), ev.Deadline, meta.CorrelationID)
		if err != nil {
			return fmt.Errorf("record drain of %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if r, ok := s.accounts.(WriteRevoker); ok {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accountCallTimeout)
		defer cancel()
		if err := r.RevokeWrite(rctx, id); err != nil {
			s.log.Warn("could not revoke the broker user's write permission of a draining tenant; AMQP producers may still publish",
				"tenant_id", id, "err", err)
		}
	}
	return st, nil
}

// Republisher puts a dead letter's raw body back into the tenant's queue under its
// original message id and returns once the broker confirmed it (main adapts the
// confirm-mode publisher of the ingest path).
type Republisher interface {
	Republish(ctx context.Context, tenantID, messageID string, body []byte, correlationID string) error
}

// WithRedrive enables dead-letter redrive through pub, at most perSecond messages a
// second over all redrives this replica runs (REDRIVE_RATE).
func (s *Service) WithRedrive(pub Republisher, perSecond int) *Service {
	s.republisher = pub
	s.redriveRate = rate.NewLimiter(rate.Limit(perSecond), max(1, perSecond/10))
	return s
}

// ErrRedriveDisabled: no Republisher was configured.
var ErrRedriveDisabled = errors.New("dead-letter redrive is not configured")

// DeadLetterResult is the answer of a redrive or a purge: Matched dead letters were
// selected (a dry run stops there), and Version is the tenant's version after the
// command (unchanged when nothing matched or on a dry run).
type DeadLetterResult struct {
	Matched int
	Version int
}

// RedriveError is a redrive that stopped part way: Moved of Matched dead letters were
// republished and marked; the rest stay pending, so running the same redrive again
// moves only them. Err is the cause (usually the broker).
type RedriveError struct {
	Matched, Moved int
	Err            error
}

func (e *RedriveError) Error() string {
	return fmt.Sprintf("redrive stopped after %d of %d dead letters: %v", e.Moved, e.Matched, e.Err)
}

func (e *RedriveError) Unwrap() error { return e.Err }

// markBatch is how many republished dead letters are marked redriven per statement.
const markBatch = 100

// RedriveDeadLetters republishes the tenant's pending dead letters sel picks. A dry
// run only counts them. A real run records tenant.dead_letters_redriven.v1 (selector,
// count, correlation id) first, so the version check and the draining refusal hold
// against concurrent commands; then publishes each raw body with its original message
// id, with confirms, at the service's redrive rate, oldest first; then marks them
// redriven, each only if it is still pending with the death it was read with.
//
// On a failure part way (broker away, confirm timeout) the republished ones are marked,
// the rest stay pending and the answer is a *RedriveError; the same redrive run again
// moves only the remaining ones. A message republished but not marked (crash between
// the confirm and the mark) is published again by the next run; the consumer stores a
// message id once, so it is never stored twice. The same holds for two redrives of the
// same dead letters running at once (both may publish a message; it is stored once,
// and each run's event counts what it picked). Nothing matched records nothing.
func (s *Service) RedriveDeadLetters(ctx context.Context, meta Meta, id string, sel events.DeadLetterSelector, dryRun bool, expected *int) (DeadLetterResult, error) {
	if s.republisher == nil {
		return DeadLetterResult{}, ErrRedriveDisabled
	}
	sel, err := CheckSelector(sel)
	if err != nil {
		return DeadLetterResult{}, err
	}
	st, err := s.Load(ctx, id)
	if err != nil {
		return DeadLetterResult{}, err
	}
	// The state checks of the decision, before any work.
	if _, err := DecideRedrive(st, sel, 0, expected); err != nil {
		return DeadLetterResult{}, err
	}
	tid := uuid.MustParse(id)
	if dryRun {
		n, err := deadletters.Count(ctx, s.db, tid, selector(sel))
		return DeadLetterResult{Matched: n, Version: st.Version}, err
	}
	picked, err := deadletters.Select(ctx, s.db, tid, selector(sel))
	if err != nil {
		return DeadLetterResult{}, err
	}
	ev, err := DecideRedrive(st, sel, len(picked), expected)
	if err != nil || ev == nil {
		return DeadLetterResult{Version: st.Version}, err
	}
	st, err = s.append(ctx, meta, st, ev, expected, nil)
	if err != nil {
		return DeadLetterResult{}, err
	}
	res := DeadLetterResult{Matched: len(picked), Version: st.Version}
	// The run goes on if the client goes away: stopping half way would only leave work
	// for a re-run. Marking uses its own context so confirmed messages are marked even
	// when publishing failed.
	run := context.WithoutCancel(ctx)
	moved := 0
	var pending []deadletters.Pending
	flush := func() error {
		_, err := deadletters.MarkRedriven(run, s.db, tid, pending)
		pending = pending[:0]
		return err
	}
	for _, p := range picked {
		if err := s.redriveRate.Wait(run); err != nil {
			return res, &RedriveError{Matched: len(picked), Moved: moved, Err: errors.Join(err, flush())}
		}
		// A message that came without a message id goes back under its dead letter's
		// id, a UUID the consumer keeps as is: a second redrive of it (after a crash
		// before the mark) is then stored once too, not under a fresh id.
		messageID := p.MessageID
		if messageID == "" {
			messageID = p.ID.String()
		}
		if err := s.republisher.Republish(run, id, messageID, p.Body, meta.CorrelationID); err != nil {
			return res, &RedriveError{Matched: len(picked), Moved: moved, Err: errors.Join(err, flush())}
		}
		moved++
		pending = append(pending, p)
		if len(pending) == markBatch {
			if err := flush(); err != nil {
				return res, &RedriveError{Matched: len(picked), Moved: moved, Err: err}
			}
		}
	}
	if err := flush(); err != nil {
		return res, &RedriveError{Matched: len(picked), Moved: moved, Err: err}
	}
	s.log.Info("dead letters redriven", "tenant_id", id, "count", moved, "correlation_id", meta.CorrelationID)
	return res, nil
}

// errPurgeRace: the dead letters changed between the count and the purge.
var errPurgeRace = errors.New("dead letters changed during the purge")

// purgeAttempts bounds the retries of a purge whose selection changed under it.
const purgeAttempts = 3

// PurgeDeadLetters marks the tenant's pending dead letters sel picks purged and records
// tenant.dead_letters_purged.v1 with their count, in one transaction (any live tenant,
// draining included). A dry run only counts them; nothing matched records nothing.
func (s *Service) PurgeDeadLetters(ctx context.Context, meta Meta, id string, sel events.DeadLetterSelector, dryRun bool, expected *int) (DeadLetterResult, error) {
	sel, err := CheckSelector(sel)
	if err != nil {
		return DeadLetterResult{}, err
	}
	tid := uuid.MustParse(id)
	for range purgeAttempts {
		st, err := s.Load(ctx, id)
		if err != nil {
			return DeadLetterResult{}, err
		}
		if _, err := DecidePurge(st, sel, 0, expected); err != nil {
			return DeadLetterResult{}, err
		}
		n, err := deadletters.Count(ctx, s.db, tid, selector(sel))
		if err != nil {
			return DeadLetterResult{}, err
		}
		ev, err := DecidePurge(st, sel, n, expected)
		if dryRun || err != nil || ev == nil {
			return DeadLetterResult{Matched: n, Version: st.Version}, err
		}
		st, err = s.append(ctx, meta, st, ev, expected, func(ctx context.Context, tx *sql.Tx) error {
			purged, err := deadletters.Purge(ctx, tx, tid, selector(sel))
			if err != nil {
				return err
			}
			if purged != n {
				return errPurgeRace
			}
			return nil
		})
		if errors.Is(err, errPurgeRace) {
			continue
		}
		if err != nil {
			return DeadLetterResult{}, err
		}
		return DeadLetterResult{Matched: n, Version: st.Version}, nil
	}
	return DeadLetterResult{}, ErrConflict
}

// selector converts a checked selector (canonical ids) to the archive's.
func selector(sel events.DeadLetterSelector) deadletters.Selector {
	out := deadletters.Selector{Reason: sel.Reason, Max: sel.Max}
	for _, id := range sel.IDs {
		out.IDs = append(out.IDs, uuid.MustParse(id))
	}
	return out
}
