// Command consumer is the consumer service of Multi-Tenant Messaging: it runs a pool of
// AMQP workers per live tenant and stores their messages. main only wires.
//
//	@title						Multi-Tenant Messaging: consumer service
//	@version					1.0
//	@description				The consumer's HTTP surface is operational only: probes, Prometheus metrics and, with PPROF on, Go's profiler. Every error is application/problem+json (RFC 9457).
//	@BasePath					/
//	@securityDefinitions.apikey	BearerAuth
//	@in							header
//	@name						Authorization
//	@description				An HS256 JWT, sent as "Authorization: Bearer <JWT>", when JWT_SECRET is set (the OpenAPI 3 document declares it as an HTTP bearer scheme; Swagger 2 has none).
package main

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/pprof"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/platform/httpserver"
	"github.com/multitenant/mtm/services/consumer/docs"
	"github.com/multitenant/mtm/services/consumer/internal/consumer"
)

// Config is the consumer service's configuration.
type Config struct {
	config.Base
	consumer.Settings
}

// Validate checks the consumer's own settings (config.Load calls it).
func (c *Config) Validate() error { return c.Settings.Validate() }

// profiler godoc
//
//	@Summary		Go profiler (net/http/pprof)
//	@Description	Only with PPROF=true (off by default: profiles expose internals and cost CPU while taken); without it every /debug/pprof path is 404. With JWT_SECRET set it needs an admin token (a profile shows every tenant's data in memory). The index (empty name) is HTML; profile, trace and the named profiles (heap, goroutine, allocs, block, mutex, threadcreate) are binary unless debug=1 asks for text; cmdline and symbol are text.
//	@ID				pprof
//	@Tags			operations
//	@Security		BearerAuth
//	@Produce		html,plain,octet-stream,application/problem+json
//	@Param			name	path		string	true	"Profile name: empty for the index, cmdline, profile, symbol, trace, allocs, block, goroutine, heap, mutex, threadcreate"
//	@Param			seconds	query		int		false	"profile and trace: how long to sample"
//	@Param			debug	query		int		false	"Named profiles: 1 for text"
//	@Success		200		{string}	string	"The profile"
//	@Failure		401		{object}	httpserver.Problem	"No or an invalid bearer token (when JWT_SECRET is set)"
//	@Failure		403		{object}	httpserver.Problem	"A tenant token (admins only)"
//	@Failure		404		{object}	httpserver.Problem	"PPROF is off, or no such profile"
//	@Header			401		{string}	WWW-Authenticate	"Bearer challenge (RFC 6750) naming the error"
//	@Header			all		{string}	X-Request-ID		"The request id"
//	@Router			/debug/pprof/{name} [get]
func profiler() fiber.Handler { return pprof.New() }

func main() {
	var cfg Config
	boot := app.Configure("consumer", &cfg, &cfg.Base, ":8082")
	ctx := context.Background()
	// Group-commit flushers, partition DDL, the events subscription and reporting each
	// take a connection; leave headroom over the flushers.
	a := boot.Start(ctx, app.Options{MaxDBConns: int32(cfg.Flushers + 8)})
	if cfg.PProf {
		a.HTTP.App.Use(profiler())
	}
	httpserver.ServeOpenAPI(a.HTTP.App, docs.OpenAPI)
	group := consumer.NewGroup()
	sub, err := eventstore.NewSubscriber(a.DB, group, a.WLog)
	if err != nil {
		a.Fatal("event subscriber", err)
	}
	svc, err := consumer.New(cfg.Settings, consumer.Deps{
		Log:             a.Log,
		WLog:            a.WLog,
		Pool:            a.Pool,
		DB:              a.DB,
		Rabbit:          a.Rabbit,
		Topology:        a.Topology,
		URL:             cfg.RabbitMQURL,
		Ready:           a.Ready,
		Registry:        a.Registry,
		MaxMessageBytes: cfg.MaxMessageBytes,
		Events:          eventstore.New(a.DB, a.WLog),
		Subscriber:      sub,
		Group:           group,
	})
	if err != nil {
		a.Fatal("consumer", err)
	}
	a.Serve(ctx, svc.Component())
}
