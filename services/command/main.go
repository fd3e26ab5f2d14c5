// Command command is the command service of Multi-Tenant Messaging. main only wires.
//
//	@title						Multi-Tenant Messaging: command service
//	@version					1.0
//	@description				Write side: tenant lifecycle commands recorded as events, and message publishing with publisher confirms. Every error is application/problem+json (RFC 9457).
//	@BasePath					/
//	@securityDefinitions.apikey	BearerAuth
//	@in							header
//	@name						Authorization
//	@description				"Bearer <JWT>" when JWT_SECRET is set.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/lifecycle"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/services/command/internal/broker"
	"github.com/multitenant/mtm/services/command/internal/httpapi"
	"github.com/multitenant/mtm/services/command/internal/idempotency"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// Config is the command service's configuration.
type Config struct {
	config.Base
	// Workers is the pool size of a tenant created without "workers".
	Workers int `env:"WORKERS" envDefault:"3"`
	// MaxWorkers is the largest pool a tenant may ask for.
	MaxWorkers int `env:"MAX_WORKERS" envDefault:"64"`
	// MaxTotalWorkers bounds the sum of all live tenants' pools.
	MaxTotalWorkers int `env:"MAX_TOTAL_WORKERS" envDefault:"1024"`
	// TenantRateLimit and TenantRateBurst are the per-tenant message ingest limit of a
	// tenant without one of its own (messages per second, 0: unlimited; bucket size).
	TenantRateLimit int `env:"TENANT_RATE_LIMIT" envDefault:"1000"`
	TenantRateBurst int `env:"TENANT_RATE_BURST" envDefault:"2000"`
	// PublishChannels is the number of confirm-mode channels for POST /tenants/{id}/messages.
	PublishChannels int `env:"PUBLISH_CHANNELS" envDefault:"8"`
	// IdempotencyKeyTTL is how long an Idempotency-Key remembers its first body: a reuse
	// with another body within it is 409.
	IdempotencyKeyTTL time.Duration `env:"IDEMPOTENCY_KEY_TTL" envDefault:"24h"`
	// PublishConfirmTimeout bounds the wait for a broker confirm before answering 503.
	PublishConfirmTimeout time.Duration `env:"PUBLISH_CONFIRM_TIMEOUT" envDefault:"5s"`
}

// limits are the bounds the tenant aggregate and the ingest path enforce.
func (c *Config) limits() tenant.Limits {
	return tenant.Limits{
		DefaultWorkers: c.Workers, MaxWorkers: c.MaxWorkers, MaxTotalWorkers: c.MaxTotalWorkers,
		DefaultRate: tenant.RateLimit{PerSecond: c.TenantRateLimit, Burst: c.TenantRateBurst},
	}
}

// Validate checks the command service's own settings.
func (c *Config) Validate() error {
	if err := c.limits().Validate(); err != nil {
		return err
	}
	if c.PublishChannels < 1 || c.PublishChannels > 256 {
		return fmt.Errorf("PUBLISH_CHANNELS: must be between 1 and 256, got %d", c.PublishChannels)
	}
	if c.IdempotencyKeyTTL <= 0 {
		return fmt.Errorf("IDEMPOTENCY_KEY_TTL: must be positive, got %s", c.IdempotencyKeyTTL)
	}
	if c.PublishConfirmTimeout <= 0 {
		return fmt.Errorf("PUBLISH_CONFIRM_TIMEOUT: must be positive, got %s", c.PublishConfirmTimeout)
	}
	return nil
}

func main() {
	token := auth.RegisterTokenFlags(flag.CommandLine)
	var cfg Config
	boot := app.Configure("command", &cfg, &cfg.Base, ":8080")
	if token.Requested() {
		// Minting needs only the secret: nothing connects.
		if err := token.Print(auth.ConfigFrom(&cfg.Base), os.Stdout); err != nil {
			app.Exit("command", app.ExitUsage, err)
		}
		return
	}
	ctx := context.Background()
	// Message bodies are the largest requests; tenant commands are far below the limit.
	a := boot.Start(ctx, app.Options{BodyLimit: cfg.MaxMessageBytes})

	// Publishing gets its own connection, so topology calls and broker flow control
	// on the shared one never stall the ingest path.
	pubConn := rabbit.NewConn(cfg.RabbitMQURL, "command-publisher", a.Log)
	a.Ready.Add("rabbitmq-publisher", pubConn.Ping)
	pub := broker.NewPublisher(pubConn, a.Log, broker.PublisherOptions{
		Channels:       cfg.PublishChannels,
		ConfirmTimeout: cfg.PublishConfirmTimeout,
		Registerer:     a.Registry,
	})
	tenants := tenant.NewService(eventstore.New(a.DB, a.WLog), a.DB, broker.NewTopology(a.Rabbit),
		cfg.limits(), a.Log)

	keys := idempotency.New(a.Pool, cfg.IdempotencyKeyTTL)

	// app.New put authentication in front of every route but the probes and docs.
	httpapi.RegisterDocs(a.HTTP.App)
	httpapi.Register(a.HTTP.App, httpapi.New(tenants, pub, a.Log).WithIdempotencyKeys(keys).WithGuards(httpapi.Guards{
		Admin:        auth.RequireAdmin(),
		TenantAccess: auth.TenantAccess,
	}))

	// Stopped after HTTP (components stop in reverse order), so in-flight publishes
	// still get their confirms.
	var pubStop lifecycle.Stopper
	publisher := lifecycle.Component{
		Name: "publisher",
		Run:  func(ctx context.Context) error { return pubStop.Run(ctx, pubConn.Run) },
		Stop: func(ctx context.Context) error { pub.Close(); return pubStop.Stop(ctx) },
	}
	var pruneStop lifecycle.Stopper
	pruner := lifecycle.Component{
		Name: "idempotency-key-pruner",
		Run: func(ctx context.Context) error {
			return pruneStop.Run(ctx, func(ctx context.Context) error { return keys.RunPruner(ctx, 10*time.Minute, a.Log) })
		},
		Stop: pruneStop.Stop,
	}
	a.Serve(ctx, pruner, publisher)
}
