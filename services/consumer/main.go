// Command consumer is the consumer service of Multi-Tenant Messaging. main only wires.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/config"
)

// Config is the consumer service's configuration.
type Config struct {
	config.Base
}

func main() {
	migrate := flag.Bool("migrate", false, "apply database migrations and exit")
	flag.Parse()

	var cfg Config
	app.LoadConfig("consumer", &cfg, &cfg.Base, ":8082")
	ctx := context.Background()
	a, err := app.New(ctx, "consumer", &cfg.Base, app.Options{})
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
	if err := a.Run(ctx); err != nil {
		a.Log.Error("exited with error", "err", err)
		os.Exit(1)
	}
}
