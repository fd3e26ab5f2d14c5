// Command consumer is the consumer service of Multi-Tenant Messaging: it runs a pool of
// AMQP workers per live tenant and stores their messages. main only wires.
package main

import (
	"context"

	"github.com/gofiber/fiber/v2/middleware/pprof"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/platform/eventstore"
	"github.com/multitenant/mtm/services/consumer/internal/consumer"
)

// Config is the consumer service's configuration.
type Config struct {
	config.Base
	consumer.Settings
}

// Validate checks the consumer's own settings (config.Load calls it).
func (c *Config) Validate() error { return c.Settings.Validate() }

func main() {
	var cfg Config
	boot := app.Configure("consumer", &cfg, &cfg.Base, ":8082")
	ctx := context.Background()
	// Group-commit flushers, partition DDL, the events subscription and reporting each
	// take a connection; leave headroom over the flushers.
	a := boot.Start(ctx, app.Options{MaxDBConns: int32(cfg.Flushers + 8)})
	if cfg.PProf {
		a.HTTP.App.Use(pprof.New())
	}
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
