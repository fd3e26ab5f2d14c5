// Command mtmctl is the command-line client of the command and query services: tenants,
// messages, dead letters, history, publishing and tokens, without curl or psql.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/multitenant/mtm/cmd/mtmctl/internal/cli"
)

func main() {
	// Ctrl+C cancels the context: --follow and publish stop cleanly and still report.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}
