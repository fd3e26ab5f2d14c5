// Command consumer is the consumer service of Multi-Tenant Messaging: it runs a pool of
// AMQP workers per live tenant and stores their messages. main only wires.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gofiber/fiber/v2/middleware/pprof"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/config"
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
	migrate := flag.Bool("migrate", false, "apply database migrations and exit")
	flag.Parse()

	var cfg Config
	app.LoadConfig("consumer", &cfg, &cfg.Base, ":8082")
	ctx := context.Background()
	// Group-commit flushers, partition DDL, the events subscription and reporting each
	// take a connection; leave headroom over the flushers.
	a, err := app.New(ctx, "consumer", &cfg.Base, app.Options{MaxDBConns: int32(cfg.Flushers + 8)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
		os.Exit(1)
	}
	if *migrate {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := a.Migrate(mctx); err != nil {
			a.Log.Error("migrate failed", "err", err)
			os.Exit(1)
		}
		return
	}
	if cfg.PProf {
		a.HTTP.App.Use(pprof.New())
	}
	svc, err := consumer.New(cfg.Settings, consumer.Deps{
		Log:             a.Log,
		WLog:            a.WLog,
		Pool:            a.Pool,
		DB:              a.DB,
		Rabbit:          a.Rabbit,
		URL:             cfg.RabbitMQURL,
		Ready:           a.Ready,
		Registry:        a.Registry,
		MaxMessageBytes: cfg.MaxMessageBytes,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
		os.Exit(2)
	}
	if err := a.Run(ctx, svc.Component()); err != nil {
		a.Log.Error("exited with error", "err", err)
		os.Exit(1)
	}
}
