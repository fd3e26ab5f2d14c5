// Command query is the query service of Multi-Tenant Messaging. main only wires.
//
//	@title						Multi-Tenant Messaging query API
//	@version					1.0
//	@description				Reads: tenants with desired and current worker counts, and each tenant's stored messages, with opaque signed cursor pagination (oldest first). Every error is application/problem+json (RFC 9457).
//	@BasePath					/
//	@securityDefinitions.apikey	BearerAuth
//	@in							header
//	@name						Authorization
//	@description				An HS256 JWT, sent as "Authorization: Bearer <JWT>", when JWT_SECRET is set (the OpenAPI 3 document declares it as an HTTP bearer scheme; Swagger 2 has none).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/swagger"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/platform/postgres"
	"github.com/multitenant/mtm/services/query/docs" // also registers the Swagger 2 spec for Swagger UI
	"github.com/multitenant/mtm/services/query/internal/api"
	"github.com/multitenant/mtm/services/query/internal/projector"
)

// Config is the query service's configuration.
type Config struct {
	config.Base
	// CursorSecret signs pagination cursors; empty falls back to JWT_SECRET (see api.NewCodec).
	CursorSecret string `env:"CURSOR_SECRET"`
	// PageMaxBytes caps the payload bytes of one messages page: fewer rows, never an
	// answer of unbounded size.
	PageMaxBytes int `env:"PAGE_MAX_BYTES" envDefault:"4194304"`
	// ReplayBatch is how many events -replay reads per query (projector.DefaultReplayBatch).
	ReplayBatch int `env:"REPLAY_BATCH" envDefault:"10000"`
}

// Validate checks the query-specific settings.
func (c *Config) Validate() error {
	if c.PageMaxBytes < 1 {
		return fmt.Errorf("PAGE_MAX_BYTES: must be positive, got %d", c.PageMaxBytes)
	}
	if c.ReplayBatch < 1 {
		return fmt.Errorf("REPLAY_BATCH: must be at least 1, got %d", c.ReplayBatch)
	}
	return nil
}

func main() {
	replay := flag.Bool("replay", false, "rebuild the query-side read models from the event store and exit")
	var cfg Config
	boot := app.Configure("query", &cfg, &cfg.Base, ":8081")
	ctx := context.Background()
	// Room for HTTP reads plus the projection (the event subscriber holds one connection
	// while it hands over an event, the apply needs another).
	a := boot.Start(ctx, app.Options{MaxDBConns: 16})
	if *replay {
		os.Exit(runReplay(ctx, a, cfg.ReplayBatch))
	}

	codec, err := api.NewCodec(cfg.CursorSecret, cfg.JWTSecret, a.Log)
	if err != nil {
		a.Fatal("cursor key", err)
	}
	store := eventstore.New(a.DB, a.WLog)
	sub, err := eventstore.NewSubscriber(a.DB, projector.ConsumerGroup, a.WLog)
	if err != nil {
		a.Fatal("event subscriber", err)
	}
	proj := projector.New(projector.Options{
		Pool:       a.Pool,
		Store:      store,
		Subscriber: sub,
		Log:        a.Log.With("component", "tenants-projection"),
		Metrics:    projector.NewMetrics(a.Registry),
	})
	a.Ready.Add("tenants-projection", proj.Ready)
	// app.New put authentication in front of every route but the probes and docs; a
	// tenant principal reads only its own tenant (others get the unknown tenant's 404).
	api.New(a.Pool, codec).WithPageBytes(cfg.PageMaxBytes).WithGuards(api.Guards{
		TenantAccess: auth.TenantAccess,
		TenantScope:  func(c *fiber.Ctx) (string, bool) { return auth.PrincipalFrom(c).TenantScope() },
	}).Register(a.HTTP.App)
	a.HTTP.App.Get("/swagger/*", swagger.HandlerDefault)
	httpserver.ServeOpenAPI(a.HTTP.App, docs.OpenAPI)

	a.Serve(ctx, proj.Component())
}

func runReplay(ctx context.Context, a *app.App, batch int) int {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer a.Pool.Close()
	defer a.DB.Close()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := postgres.WaitReady(wctx, a.Pool, a.Log); err != nil {
		a.Log.Error("replay failed", "err", err)
		return 1
	}
	start := time.Now()
	res, err := projector.Replay(ctx, a.Pool, batch)
	if err != nil {
		a.Log.Error("replay failed", "err", err)
		return 1
	}
	a.Log.Info("replay done", "events", res.Events, "skipped", res.Skipped, "tenants", res.Tenants, "position", res.Position, "took", time.Since(start).Round(time.Millisecond))
	return 0
}
