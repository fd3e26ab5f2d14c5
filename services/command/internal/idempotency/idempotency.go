// Package idempotency remembers, for a window, which body each HTTP Idempotency-Key was
// first used with. A retry with the same key and the same body is the same message
// (published again, stored once); the same key with another body within the window is
// a client bug that would otherwise be deduplicated away silently, so it is refused.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multitenant/mtm/platform/lifecycle"
)

// ErrReused means the key was used with a different body within the window.
var ErrReused = errors.New("idempotency key already used with a different body")

// DB is what Keys needs: *pgxpool.Pool satisfies it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Keys is the store of used keys.
type Keys struct {
	db     DB
	window time.Duration
}

// New remembers keys for window (IDEMPOTENCY_KEY_TTL).
func New(db DB, window time.Duration) *Keys { return &Keys{db: db, window: window} }

// Window is how long a key is remembered.
func (k *Keys) Window() time.Duration { return k.window }

// claimSQL records the key's first use, or takes it over when its record is older than
// the window; it returns a row only then. The key's own row lock makes concurrent
// first uses agree on one body.
const claimSQL = `
INSERT INTO idempotency_keys (tenant_id, key, body_sha256) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, key) DO UPDATE
	SET body_sha256 = EXCLUDED.body_sha256, first_used_at = now()
	WHERE idempotency_keys.first_used_at < now() - $4::interval
RETURNING true`

// Claim records key for body, or checks it against the body of the key's first use: nil
// when the key is new, expired or was used with the same body; ErrReused otherwise.
func (k *Keys) Claim(ctx context.Context, tenant uuid.UUID, key string, body []byte) error {
	sum := sha256.Sum256(body)
	var claimed bool
	err := k.db.QueryRow(ctx, claimSQL, tenant, key, sum[:], k.window).Scan(&claimed)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("claim idempotency key: %w", err)
	}
	var first []byte
	if err := k.db.QueryRow(ctx, `SELECT body_sha256 FROM idempotency_keys WHERE tenant_id = $1 AND key = $2`, tenant, key).Scan(&first); err != nil {
		return fmt.Errorf("read idempotency key: %w", err)
	}
	if !bytes.Equal(first, sum[:]) {
		return ErrReused
	}
	return nil
}

// Prune forgets keys older than the window and returns how many.
func (k *Keys) Prune(ctx context.Context) (int64, error) {
	tag, err := k.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE first_used_at < now() - $1::interval`, k.window)
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RunPruner prunes now and every interval until ctx ends; errors are logged and retried
// on the next tick (a missed prune only keeps old keys a little longer).
func (k *Keys) RunPruner(ctx context.Context, interval time.Duration, log *slog.Logger) error {
	lifecycle.Every(ctx, interval, func(ctx context.Context) {
		if n, err := k.Prune(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("pruning idempotency keys failed", "err", err)
			}
		} else if n > 0 {
			log.Debug("idempotency keys pruned", "count", n)
		}
	})
	return nil
}
