package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/platform/rabbit"
)

// bench is the state shared by the scenarios.
type bench struct {
	opt  options
	log  *slog.Logger
	pool *pgxpool.Pool
	// amqp holds two connections: publishers spread their channels over them, as the
	// product does, so one connection's frame writer is not the bottleneck.
	amqp []*amqp.Connection
	http *http.Client
	svc  *services

	// baselineRate is the quorum baseline's drain rate, the denominator of drain's ratio.
	baselineRate float64
	// drainRate is the drain scenario's rate, the denominator of density's ratio.
	drainRate float64
	// drainTenants run `workers` workers each after the drain scenario; sustained
	// reuses them.
	drainTenants []string
	// servicesNote says why the services are not up, once they failed to start.
	servicesNote string

	mu sync.Mutex
	// queues we declared (directly or through the command service) and must delete.
	queues []string
}

// trackTable remembers, inside the bench database, every queue the run created, so a
// run that died before its cleanup is cleaned up by the next one.
const trackTable = "bench_queues"

func setup(ctx context.Context, o options, log *slog.Logger) (*bench, error) {
	b := &bench{opt: o, log: log, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	for i := range 2 {
		c, err := amqp.DialConfig(o.rabbitURL, amqp.Config{
			Properties: amqp.Table{"connection_name": fmt.Sprintf("bench-%d", i)},
			Dial:       amqp.DefaultDial(5 * time.Second),
		})
		if err != nil {
			return nil, fmt.Errorf("connect to RabbitMQ: %w", err)
		}
		b.amqp = append(b.amqp, c)
	}
	b.cleanupLeftovers(ctx, o.databaseURL)
	b.cleanupLeftovers(ctx, replayURL(o.databaseURL))
	if err := recreateDatabase(ctx, o.databaseURL); err != nil {
		return nil, err
	}
	pool, err := postgres.NewPool(ctx, o.databaseURL, 16)
	if err != nil {
		return nil, err
	}
	b.pool = pool
	if err := postgres.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE "+trackTable+" (name text PRIMARY KEY)"); err != nil {
		return nil, fmt.Errorf("create %s: %w", trackTable, err)
	}
	b.svc = newServices(o, log)
	for _, sv := range b.svc.all() {
		_ = os.Remove(sv.logPath) // each run's logs start empty
	}
	return b, nil
}

// track records queues to delete at the end (and at the next start, if this run dies).
func (b *bench) track(ctx context.Context, queues ...string) error {
	b.mu.Lock()
	b.queues = append(b.queues, queues...)
	b.mu.Unlock()
	_, err := b.pool.Exec(ctx, "INSERT INTO "+trackTable+" SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", queues)
	if err != nil {
		return fmt.Errorf("track queues: %w", err)
	}
	return nil
}

func (b *bench) trackTenants(ctx context.Context, ids ...string) error {
	qs := make([]string, 0, 2*len(ids))
	for _, id := range ids {
		qs = append(qs, rabbit.QueueName(id), rabbit.DLQName(id))
	}
	return b.track(ctx, qs...)
}

// cleanup stops the services, deletes every queue the run created and drops the bench
// database.
func (b *bench) cleanup(ctx context.Context) {
	b.svc.stopAll(ctx)
	b.mu.Lock()
	queues := b.queues
	b.mu.Unlock()
	if err := b.deleteQueues(ctx, queues); err != nil {
		b.log.Warn("delete queues", "err", err)
	}
	b.pool.Close()
	if !b.opt.keepDB {
		if err := dropDatabase(ctx, b.opt.databaseURL); err != nil {
			b.log.Warn("drop bench database", "err", err)
		}
	}
	for _, c := range b.amqp {
		_ = c.Close()
	}
}

// cleanupLeftovers deletes the queues a previous, interrupted run recorded in its
// database. Best effort: there may be no previous database.
func (b *bench) cleanupLeftovers(ctx context.Context, url string) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT name FROM "+trackTable)
	if err != nil {
		return
	}
	queues, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(queues) == 0 {
		return
	}
	b.log.Info("deleting queues left by a previous run", "queues", len(queues))
	if err := b.deleteQueues(ctx, queues); err != nil {
		b.log.Warn("delete leftover queues", "err", err)
	}
}

// deleteQueues deletes queues over a few channels in parallel: quorum queue deletion
// takes milliseconds each, and scale creates thousands. A tenant's work queue takes
// the tenant's own exchange (rabbit.ExchangeName, declared by the command service) with
// it, so a run leaves no tenant topology on the broker.
func (b *bench) deleteQueues(ctx context.Context, queues []string) error {
	if len(queues) == 0 {
		return nil
	}
	start := time.Now()
	const par = 4
	g, ctx := errgroup.WithContext(ctx)
	for w := range par {
		g.Go(func() error {
			var ch *amqp.Channel
			defer func() {
				if ch != nil {
					_ = ch.Close()
				}
			}()
			for i := w; i < len(queues); i += par {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if ch == nil || ch.IsClosed() {
					var err error
					if ch, err = b.amqp[w%len(b.amqp)].Channel(); err != nil {
						return fmt.Errorf("open channel: %w", err)
					}
				}
				if ex, ok := tenantExchange(queues[i]); ok {
					// Deleting a missing exchange succeeds in RabbitMQ.
					if err := ch.ExchangeDelete(ex, false, false); err != nil {
						return fmt.Errorf("delete exchange %s: %w", ex, err)
					}
				}
				if _, err := ch.QueueDelete(queues[i], false, false, false); err != nil {
					var ae *amqp.Error
					if errors.As(err, &ae) && ae.Code == amqp.NotFound {
						continue // already gone; the channel is closed and reopened above
					}
					return fmt.Errorf("delete queue %s: %w", queues[i], err)
				}
			}
			return nil
		})
	}
	err := g.Wait()
	b.log.Info("queues deleted", "queues", len(queues), "seconds", time.Since(start).Seconds())
	return err
}

// tenantExchange is the exchange of the tenant whose work queue is queue.
func tenantExchange(queue string) (string, bool) {
	id, ok := strings.CutPrefix(queue, "tenant_")
	if !ok {
		return "", false
	}
	if id, ok = strings.CutSuffix(id, "_queue"); !ok || rabbit.QueueName(id) != queue {
		return "", false
	}
	return rabbit.ExchangeName(id), true
}

// adminConn connects to the server's maintenance database to create or drop url's.
func adminConn(ctx context.Context, url string) (*pgx.Conn, string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, "", fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("connect to postgres: %w", err)
	}
	return conn, name, nil
}

func dropDatabase(ctx context.Context, url string) error {
	conn, name, err := adminConn(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// FORCE: a service killed mid-run may leave sessions behind.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func recreateDatabase(ctx context.Context, url string) error {
	if err := dropDatabase(ctx, url); err != nil {
		return err
	}
	conn, name, err := adminConn(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// replayURL is the replay scenario's own database: its 10,000 tenants must not reach
// the running consumer, which would declare 20,000 queues for them.
func replayURL(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return url
	}
	return replaceDBName(url, cfg.Database, cfg.Database+"_replay")
}
