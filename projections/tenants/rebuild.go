package tenants

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/multitenant/mtm/events"
)

// CopyTx is what Rebuild.Save needs: pgx.Tx satisfies it.
type CopyTx interface {
	Execer
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
}

// Rebuild folds events, in position order, into the final tenant rows in memory, with
// the same transitions as the live projection (Next), and then writes them all at once
// (Save). It holds one Row per tenant ever created (~200 bytes plus the name): 100k
// tenants are ~20 MB, which is the scale it is meant for.
type Rebuild struct {
	rows  []Row // in creation order, so the table is written in created_at order
	index map[uuid.UUID]int
	// Position is the last position added (0: none); Save makes it the checkpoint.
	Position int64
	// Events counts the events added, Skipped those that can never apply.
	Events, Skipped int
}

// NewRebuild starts an empty rebuild; sizeHint is the expected number of tenants (0: unknown).
func NewRebuild(sizeHint int) *Rebuild {
	return &Rebuild{index: make(map[uuid.UUID]int, sizeHint)}
}

// Add folds the event stored at position into the rows. An event that can never apply
// (ErrInvalidEvent) is counted in Skipped and returns nil, as the live projection skips
// it; an unknown type only moves the position. Other errors are returned.
func (r *Rebuild) Add(position int64, rec events.Recorded) error {
	id, ok, err := Target(position, rec)
	if errors.Is(err, ErrInvalidEvent) {
		r.Skipped++
		ok = false
	} else if err != nil {
		return err
	}
	if ok {
		i, found := r.index[id]
		var cur *Row
		if found {
			cur = &r.rows[i]
		}
		next, changed, err := Next(cur, id, rec)
		if err != nil {
			return fmt.Errorf("event at position %d: %w", position, err)
		}
		switch {
		case changed && found:
			r.rows[i] = next
		case changed:
			r.index[id] = len(r.rows)
			r.rows = append(r.rows, next)
		}
	}
	r.Position = position
	r.Events++
	return nil
}

// Len is the number of tenant rows built so far.
func (r *Rebuild) Len() int { return len(r.rows) }

// Save writes the rows with one COPY into tenants, which the caller has emptied in the
// same transaction (Reset), and the checkpoint at Position (none when no event was added,
// like an empty live projection).
func (r *Rebuild) Save(ctx context.Context, tx CopyTx) error {
	if len(r.rows) > 0 {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"tenants"},
			[]string{"id", "name", "status", "workers_desired", "rate_per_second", "rate_burst",
				"drain_requested_at", "drain_deadline", "version", "created_at", "updated_at"},
			pgx.CopyFromSlice(len(r.rows), func(i int) ([]any, error) {
				row := &r.rows[i]
				perSecond, burst := row.RateLimit.columns()
				drainAt, drainDeadline := row.Drain.columns()
				// [16]byte encodes directly; uuid.UUID would take pgx's slower driver.Valuer path.
				return []any{[16]byte(row.ID), row.Name, row.Status, row.WorkersDesired, perSecond, burst,
					drainAt, drainDeadline, row.Version, row.CreatedAt, row.UpdatedAt}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy %d tenants: %w", len(r.rows), err)
		}
		if n != int64(len(r.rows)) {
			return fmt.Errorf("copy tenants: wrote %d of %d rows", n, len(r.rows))
		}
	}
	if r.Events > 0 {
		if err := SaveCheckpoint(ctx, tx, r.Position); err != nil {
			return err
		}
	}
	return nil
}
