// Package consumer is the consumer service: it folds tenant events into desired state,
// reconciles per-tenant worker pools (AMQP consumers) to it, and stores every message
// in the tenant's partition with group commit, acking only after commit.
//
// The reconciler (reconcile.go) only compares desired with actual: it sets a tenant up,
// sizes its tenantPool (pool.go), which owns the worker goroutines, reports how many
// consume (tenant_workers, through projections/tenants) and removes deleted tenants.
// Its sampler reads every queue's depth each ReconcileInterval; the backlog reporter
// (backlog.go) writes what changed next to the worker count, off the reconciler.
// Each worker hands its deliveries to a tenantHandler (handler.go), which stores,
// dead-letters or requeues them. A paused tenant's pool is sized to zero (a draining one
// runs even if paused). The archiver (archive.go) moves every tenant's DLQ into the
// dead_letters table in bounded passes the sampler or the dead-letterer ask for.
package consumer

import (
	"fmt"
	"time"
)

// Settings are the consumer's own configuration variables (the rest is config.Base).
type Settings struct {
	// Prefetch is the unacked window per worker (basic.qos): deliveries a worker holds
	// in flight so they can share group commits.
	Prefetch int `env:"CONSUMER_PREFETCH" envDefault:"128"`
	// AckDelay is how long an ack may wait to be merged with later ones into one
	// multiple ack (fewer Raft commands on quorum queues); it never delays storing.
	AckDelay time.Duration `env:"CONSUMER_ACK_DELAY" envDefault:"10ms"`
	// Connections is how many AMQP connections worker channels are spread over.
	Connections int `env:"CONSUMER_CONNECTIONS" envDefault:"4"`
	// ReconcileInterval is how often pools are re-checked against desired state and
	// queue depths sampled, even without events (so pools come back after an outage).
	ReconcileInterval time.Duration `env:"RECONCILE_INTERVAL" envDefault:"2s"`
	// MaxBatch caps the rows of one group-commit transaction.
	MaxBatch int `env:"STORE_MAX_BATCH" envDefault:"1000"`
	// Flushers is the number of group-commit transactions in flight at once. A tenant
	// has at most one of them (the writer's fair queue), so with two a busy tenant's
	// batch never holds a quiet tenant's rows back: on the 2-core bench machine two
	// flushers cut a quiet tenant's p50 next to a 16-worker drain from 55 to 17 ms and
	// drained 10 tenants at 28k msg/s against 23.6k with one.
	Flushers int `env:"STORE_FLUSHERS" envDefault:"2"`
	// DrainTimeout bounds how long a deleted tenant's in-flight messages may take to
	// finish before its pool is stopped anyway (its queue is deleted next).
	DrainTimeout time.Duration `env:"DELETE_DRAIN_TIMEOUT" envDefault:"10s"`
	// ReplicaHeartbeat is how often this replica writes its heartbeat and reads which
	// replicas are live (a changed view moves tenants at once).
	ReplicaHeartbeat time.Duration `env:"REPLICA_HEARTBEAT" envDefault:"1s"`
	// ReplicaTTL is how long a replica that stopped heartbeating (killed, or cut off
	// from the database) keeps its tenants before the live replicas take them over.
	// Lower hands over sooner; too low makes a replica that is merely slow (a long GC
	// pause, a busy database) lose its tenants and take them back.
	ReplicaTTL time.Duration `env:"REPLICA_TTL" envDefault:"10s"`
	// PProf mounts net/http/pprof under /debug/pprof on the HTTP server, for profiling
	// (off by default: profiles expose internals and cost CPU while taken).
	PProf bool `env:"PPROF" envDefault:"false"`
}

// Validate names the bad variable.
func (s Settings) Validate() error {
	switch {
	case s.Prefetch < 1 || s.Prefetch > 65535:
		return fmt.Errorf("CONSUMER_PREFETCH: must be between 1 and 65535, got %d", s.Prefetch)
	case s.AckDelay < 0 || s.AckDelay > time.Second:
		return fmt.Errorf("CONSUMER_ACK_DELAY: must be between 0 and 1s, got %s", s.AckDelay)
	case s.Connections < 1 || s.Connections > 64:
		return fmt.Errorf("CONSUMER_CONNECTIONS: must be between 1 and 64, got %d", s.Connections)
	case s.ReconcileInterval <= 0:
		return fmt.Errorf("RECONCILE_INTERVAL: must be positive, got %s", s.ReconcileInterval)
	case s.MaxBatch < 1:
		return fmt.Errorf("STORE_MAX_BATCH: must be at least 1, got %d", s.MaxBatch)
	case s.Flushers < 1 || s.Flushers > 32:
		return fmt.Errorf("STORE_FLUSHERS: must be between 1 and 32, got %d", s.Flushers)
	case s.DrainTimeout <= 0:
		return fmt.Errorf("DELETE_DRAIN_TIMEOUT: must be positive, got %s", s.DrainTimeout)
	case s.ReplicaHeartbeat < 100*time.Millisecond || s.ReplicaHeartbeat > time.Minute:
		return fmt.Errorf("REPLICA_HEARTBEAT: must be between 100ms and 1m, got %s", s.ReplicaHeartbeat)
	case s.ReplicaTTL < 3*s.ReplicaHeartbeat:
		// Two missed heartbeats (a slow database) must not expire a live replica.
		return fmt.Errorf("REPLICA_TTL: must be at least 3 × REPLICA_HEARTBEAT (%s), got %s", 3*s.ReplicaHeartbeat, s.ReplicaTTL)
	}
	return nil
}
