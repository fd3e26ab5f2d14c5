// Command command is the command service of Multi-Tenant Messaging. main only wires.
//
//	@title						Multi-Tenant Messaging: command service
//	@version					1.0
//	@description				Write side: tenant lifecycle commands recorded as events, and message publishing with publisher confirms. Every error is application/problem+json (RFC 9457).
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
	"log/slog"
	"os"
	"time"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/lifecycle"
	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rabbitadmin"
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
	// MaxTenants bounds the live tenants. Each costs the broker about 3 file handles
	// and 77 KB per quorum queue (28 KB and none per classic one), so 1000 tenants on
	// the default queue types need about 3000 of the broker's file handles: far more
	// than the 1024-file limit a distribution's broker starts with, within the 65536
	// scripts/deps.sh and the compose file give it. Every tenant also claims at least
	// one of MAX_TOTAL_WORKERS (1024), so the two defaults agree.
	MaxTenants int `env:"MAX_TENANTS" envDefault:"1000"`
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
	// ManagementURL is the RabbitMQ management API with an administrator's credentials;
	// set, every tenant gets its own broker user. Empty turns per-tenant accounts off.
	ManagementURL string `env:"RABBITMQ_MANAGEMENT_URL"`
	// DLQMaxLength bounds every tenant's DLQ (a broker policy, put through the
	// management API): past it dead letters wait unacked in the tenant's queue.
	DLQMaxLength int `env:"DLQ_MAX_LENGTH" envDefault:"10000"`
	// DrainCheckInterval is how often the drain process manager looks at the queues of
	// draining tenants (DELETE ?drain=true).
	DrainCheckInterval time.Duration `env:"DRAIN_CHECK_INTERVAL" envDefault:"1s"`
	// RedriveRate bounds dead-letter redrives: messages a second over all redrives of
	// one replica.
	RedriveRate int `env:"REDRIVE_RATE" envDefault:"500"`
}

// limits are the bounds the tenant aggregate and the ingest path enforce.
func (c *Config) limits() tenant.Limits {
	return tenant.Limits{
		DefaultWorkers: c.Workers, MaxWorkers: c.MaxWorkers, MaxTotalWorkers: c.MaxTotalWorkers, MaxTenants: c.MaxTenants,
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
	if c.DLQMaxLength < 1 {
		return fmt.Errorf("DLQ_MAX_LENGTH: must be at least 1, got %d", c.DLQMaxLength)
	}
	if c.DrainCheckInterval < 100*time.Millisecond || c.DrainCheckInterval > time.Hour {
		return fmt.Errorf("DRAIN_CHECK_INTERVAL: must be between 100ms and 1h, got %s", c.DrainCheckInterval)
	}
	if c.RedriveRate < 1 || c.RedriveRate > 100_000 {
		return fmt.Errorf("REDRIVE_RATE: must be between 1 and 100000, got %d", c.RedriveRate)
	}
	if c.ManagementURL != "" {
		if _, _, err := c.management(); err != nil {
			return err
		}
	}
	return nil
}

// management is the RabbitMQ management API client from RABBITMQ_MANAGEMENT_URL and the
// vhost of RABBITMQ_URL (tenant users and DLQs live where the tenant queues are; with a
// list of nodes, the first URL's, which validation made every node's).
func (c *Config) management() (*rabbitadmin.Client, string, error) {
	admin, err := rabbitadmin.New(c.ManagementURL, rabbitadmin.DefaultTimeout)
	if err != nil {
		// Never echo the URL: it carries the administrator's password.
		return nil, "", fmt.Errorf("RABBITMQ_MANAGEMENT_URL: %w", err)
	}
	vhost, err := rabbit.VHost(c.RabbitMQURL)
	if err != nil {
		return nil, "", fmt.Errorf("RABBITMQ_URL: %w", err)
	}
	return admin, vhost, nil
}

// accountSweepInterval is how often users of deleted tenants are looked for: at most
// this long after the management API is back, a removal that failed at delete time is done.
const accountSweepInterval = time.Minute

// idempotencyPruneInterval is how often Idempotency-Keys past IDEMPOTENCY_KEY_TTL are
// deleted.
const idempotencyPruneInterval = 10 * time.Minute

// dlqBoundInterval is how often the DLQ bound policy is put again (after an outage of
// the management API at start, or a policy removed by hand).
const dlqBoundInterval = 5 * time.Minute

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
	topology := broker.NewTopology(a.Rabbit, a.Topology, a.Log)
	tenants := tenant.NewService(eventstore.New(a.DB, a.WLog), a.DB, topology, cfg.limits(), a.Log).
		WithRedrive(pub, cfg.RedriveRate)
	sweeper := brokerAccounts(&cfg, tenants, a.Log)
	drains := tenants.NewDrains(drainProbe(&cfg, topology))

	keys := idempotency.New(a.Pool, cfg.IdempotencyKeyTTL)

	// app.New put authentication in front of every route but the probes and docs.
	httpapi.RegisterDocs(a.HTTP.App)
	httpapi.Register(a.HTTP.App, httpapi.New(tenants, pub, a.Log).WithIdempotencyKeys(keys).WithGuards(httpapi.Guards{
		Admin:        auth.RequireAdmin(),
		TenantAccess: auth.TenantAccess,
	}))

	// Stopped after HTTP (components stop in reverse order), so in-flight publishes
	// still get their confirms.
	publisher := lifecycle.Cancellable("publisher", pubConn.Run)
	stopConn := publisher.Stop
	publisher.Stop = func(ctx context.Context) error { pub.Close(); return stopConn(ctx) }
	pruner := lifecycle.Cancellable("idempotency-key-pruner", func(ctx context.Context) error {
		return keys.RunPruner(ctx, idempotencyPruneInterval, a.Log)
	})
	// After the publisher: stopped before it, so no delete starts while it closes.
	drainer := lifecycle.Cancellable("drain-process-manager", func(ctx context.Context) error {
		drains.Run(ctx, cfg.DrainCheckInterval)
		return nil
	})
	a.Serve(ctx, append([]lifecycle.Component{pruner, publisher, drainer}, sweeper...)...)
}

// drainProbe looks at draining tenants' queues: ready and unacknowledged counts through
// the management API when RABBITMQ_MANAGEMENT_URL is set, else only the ready count
// (passive declare), a weaker guarantee documented on broker.DrainProbe.
func drainProbe(cfg *Config, topology *broker.Topology) *broker.DrainProbe {
	if cfg.ManagementURL == "" {
		return broker.NewDrainProbe(topology, nil, "")
	}
	admin, vhost, err := cfg.management()
	if err != nil {
		app.Exit("command", app.ExitUsage, err) // Validate already checked it
	}
	return broker.NewDrainProbe(topology, admin, vhost)
}

// brokerAccounts turns per-tenant broker accounts and the DLQ bound on when
// RABBITMQ_MANAGEMENT_URL is set and returns their components: the sweeper that finishes
// user removals a delete could not do, and the keeper of the DLQ bound; nothing when off.
func brokerAccounts(cfg *Config, tenants *tenant.Service, log *slog.Logger) []lifecycle.Component {
	if cfg.ManagementURL == "" {
		log.Warn("per-tenant broker accounts and the DLQ bound are off: RABBITMQ_MANAGEMENT_URL is not set; producers share the services' broker account, which can write to every tenant's queue, and DLQs are bounded only by a policy set by hand")
		return nil
	}
	admin, vhost, err := cfg.management()
	if err != nil {
		app.Exit("command", app.ExitUsage, err) // Validate already checked it
	}
	tenants.WithAccounts(broker.NewAccounts(admin, vhost))
	bound := broker.NewDLQBound(admin, vhost, cfg.DLQMaxLength)
	return []lifecycle.Component{
		lifecycle.Cancellable("broker-account-sweeper", func(ctx context.Context) error {
			tenants.RunAccountSweeper(ctx, accountSweepInterval)
			return nil
		}),
		lifecycle.Cancellable("dlq-bound", func(ctx context.Context) error {
			bound.Run(ctx, dlqBoundInterval, log)
			return nil
		}),
	}
}
