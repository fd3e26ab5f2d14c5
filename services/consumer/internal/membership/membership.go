// Package membership decides which consumer replica runs which tenant. Every replica
// heartbeats its row in consumer_replicas; the live replicas are those whose heartbeat
// is younger than the TTL by the database's clock. Each tenant belongs to the live
// replica with the highest rendezvous hash of (replica, tenant), so every replica
// computes the same owner from the same view without talking to the others, and a
// replica joining or leaving moves only the tenants it takes or gives up (about 1/N).
package membership

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multitenant/mtm/platform/rendezvous"
	"github.com/multitenant/mtm/projections/tenants"
)

// ErrNoView is the readiness answer before the first heartbeat.
var ErrNoView = errors.New("replica membership not known yet (no heartbeat written)")

// Config is how often a replica heartbeats and how long a silent one counts as live.
type Config struct {
	Heartbeat time.Duration
	TTL       time.Duration
}

// View is the live replicas at one heartbeat, sorted.
type View struct {
	Replicas []string
	// Rejoined: this replica's row had expired and been removed (it was cut off from
	// the database for longer than the TTL), so its worker reports were forgotten and
	// must be written again.
	Rejoined bool
}

// Owner returns the replica that owns tenantID in v ("" if v is empty).
func (v View) Owner(tenantID string) string { return rendezvous.Owner(v.Replicas, tenantID) }

// NewID names this process: the host (the pod name on Kubernetes) and a random suffix,
// unique even when processes share a host or a restarted pod keeps its name.
func NewID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "consumer"
	}
	var b [4]byte
	u := uuid.New()
	copy(b[:], u[:4])
	return fmt.Sprintf("%s-%08x", strings.ToLower(host), binary.BigEndian.Uint32(b[:]))
}

// Membership is one replica's membership: Run heartbeats and follows the view; Leave
// removes the replica.
type Membership struct {
	id   string
	cfg  Config
	pool *pgxpool.Pool
	log  *slog.Logger

	mu   sync.Mutex
	view View
	// beats counts successful heartbeats: the view is known from the second, so
	// replicas started together see each other before taking tenants (instead of the
	// first one setting every tenant up, then handing most of them over).
	beats int

	// Run's own: when the last heartbeat was written, and until when a replica that
	// was itself cut off longer than the TTL keeps the replicas it knew (see beat).
	lastBeat   time.Time
	graceUntil time.Time
	changed    chan struct{} // signalled (non-blocking) when the view changes
}

// New prepares membership for replica id; nothing is written until Run.
func New(id string, cfg Config, pool *pgxpool.Pool, log *slog.Logger) *Membership {
	return &Membership{id: id, cfg: cfg, pool: pool, log: log.With("replica", id), changed: make(chan struct{}, 1)}
}

// Changed is signalled when the view changes (the reconciler re-checks ownership).
func (m *Membership) Changed() <-chan struct{} { return m.changed }

// View returns the latest view and whether one is known yet.
func (m *Membership) View() (View, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view, m.beats >= 2
}

// Ready is a readiness check: false until the first heartbeat was written.
func (m *Membership) Ready(context.Context) error {
	if _, ok := m.View(); !ok {
		return ErrNoView
	}
	return nil
}

// Run heartbeats every Heartbeat until ctx ends. A failed heartbeat keeps the last
// view: a replica cut off from the database keeps running its tenants (storage is
// idempotent, so a replica that took them over meanwhile stores nothing twice).
func (m *Membership) Run(ctx context.Context) {
	tick := time.NewTicker(m.cfg.Heartbeat)
	defer tick.Stop()
	failing := false
	for {
		if err := m.beat(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				m.log.Warn("replica heartbeat failed; keeping the last view", "err", err)
			}
			failing = true
		} else if failing {
			m.log.Info("replica heartbeat written again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// beat writes this replica's heartbeat, reads the live replicas and forgets the
// expired ones (any replica may: the deletes are idempotent).
func (m *Membership) beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Heartbeat+m.cfg.TTL/2)
	defer cancel()
	// After an outage of the database longer than the TTL every replica's heartbeat is
	// stale, and the first one back would see itself alone, take every tenant and
	// forget the others' reports, only to hand most back a moment later. A replica that
	// was cut off itself therefore keeps the replicas it knew for one more TTL, giving
	// them time to write their heartbeats, before it forgets anyone.
	if start := time.Now(); !m.lastBeat.IsZero() && start.Sub(m.lastBeat) > m.cfg.TTL {
		m.graceUntil = start.Add(m.cfg.TTL)
	}
	grace := time.Now().Before(m.graceUntil)
	inserted, live, err := m.writeAndRead(ctx, !grace)
	if err != nil {
		return err
	}
	m.lastBeat = time.Now()
	if grace {
		prev, _ := m.View()
		for _, r := range prev.Replicas {
			if !slices.Contains(live, r) {
				live = append(live, r)
			}
		}
	}
	slices.Sort(live)
	m.mu.Lock()
	m.beats++
	if m.beats < 2 {
		m.mu.Unlock()
		return nil
	}
	first := m.beats == 2
	rejoined := inserted && !first
	same := !first && slices.Equal(m.view.Replicas, live)
	m.view = View{Replicas: live, Rejoined: m.view.Rejoined || rejoined}
	m.mu.Unlock()
	if rejoined {
		m.log.Warn("this replica's heartbeat had expired (cut off from the database longer than the TTL); rejoined")
	}
	if first || !same || rejoined {
		if !first && !same {
			m.log.Info("consumer replicas changed", "live", live)
		}
		m.signal()
	}
	return nil
}

// writeAndRead writes this replica's heartbeat and returns the live replicas (itself
// included) and whether its row had to be inserted. With sweep it also removes the
// replicas whose heartbeat expired together with their worker reports. All in one
// transaction, so with one now(): no replica is ever seen gone while its reports still
// count.
func (m *Membership) writeAndRead(ctx context.Context, sweep bool) (inserted bool, live []string, err error) {
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
			INSERT INTO consumer_replicas (replica_id) VALUES ($1)
			ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = now()
			RETURNING xmax = 0`, m.id).Scan(&inserted); err != nil {
			return fmt.Errorf("write heartbeat: %w", err)
		}
		if sweep {
			rows, err := tx.Query(ctx, `DELETE FROM consumer_replicas WHERE heartbeat_at < now() - $1::interval RETURNING replica_id`, m.cfg.TTL)
			if err != nil {
				return fmt.Errorf("remove expired replicas: %w", err)
			}
			gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("remove expired replicas: %w", err)
			}
			if len(gone) > 0 {
				m.log.Warn("consumer replicas stopped heartbeating; their tenants move to the live replicas", "gone", gone, "ttl", m.cfg.TTL)
				if _, err := tenants.ForgetReplicas(ctx, tx, gone); err != nil {
					return err
				}
			}
		}
		rows, err := tx.Query(ctx, `SELECT replica_id FROM consumer_replicas WHERE heartbeat_at >= now() - $1::interval`, m.cfg.TTL)
		if err != nil {
			return fmt.Errorf("read replicas: %w", err)
		}
		live, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("read replicas: %w", err)
		}
		return nil
	})
	return inserted, live, err
}

// AckRejoined clears View.Rejoined once the reports were written again.
func (m *Membership) AckRejoined() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.view.Rejoined = false
}

func (m *Membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Leave removes this replica: its row and its worker reports. The others take its
// tenants over at their next heartbeat. Call it after the replica stopped consuming.
func (m *Membership) Leave(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM consumer_replicas WHERE replica_id = $1`, m.id); err != nil {
			return fmt.Errorf("delete replica %s: %w", m.id, err)
		}
		_, err := tenants.ForgetReplicas(ctx, tx, []string{m.id})
		return err
	})
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}
