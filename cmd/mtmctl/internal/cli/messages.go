package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/multitenant/mtm/client"
)

func (a *app) messagesCmd() *cobra.Command {
	return a.group("messages", "Browse a tenant's stored messages", a.messagesListCmd())
}

func (a *app) messagesListCmd() *cobra.Command {
	var (
		limit            int
		follow           bool
		interval, window time.Duration
	)
	c := &cobra.Command{
		Use:   "list TENANT",
		Short: "List a tenant's stored messages, oldest first; --follow keeps printing new ones",
		Long: `List a tenant's stored messages, oldest first.

With --follow, mtmctl prints every stored message and then polls every --interval for new
ones until Ctrl+C; -o json prints one JSON object per line. Each poll re-reads the
messages stored within --lookback of the newest one seen, because a message can become
visible slightly after a newer one; a message that becomes visible later than that (its
consumer retrying through a database outage) is not printed by --follow, but a later
'messages list' shows it.`,
		Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			if err := checkLimit(limit); err != nil {
				return err
			}
			if follow && limit != 0 {
				return usagef("--limit: not with --follow (it prints every message)")
			}
			if interval <= 0 || window < 0 {
				return usagef("--interval must be positive and --lookback at least 0")
			}
			ctx, cl := cmd.Context(), a.client()
			id, err := a.resolveTenant(ctx, cl, args[0])
			if err != nil {
				return err
			}
			page := func(ctx context.Context, cursor string, n int) (client.MessagePage, error) {
				return cl.Messages(ctx, id, cursor, n)
			}
			if follow {
				return a.followMessages(ctx, newFollower(page, maxPage, window), interval)
			}
			ms, err := collect(ctx, limit, func(cursor string, n int) ([]client.Message, string, error) {
				p, err := page(ctx, cursor, n)
				return p.Data, p.NextCursor, err
			})
			if err != nil {
				return fmt.Errorf("list messages: %w", err)
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, ms)
			}
			return writeMessageLines(a.streams.Out, ms)
		}),
	}
	limitFlag(c, &limit)
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep polling for new messages until Ctrl+C")
	c.Flags().DurationVar(&interval, "interval", time.Second, "with --follow: time between polls")
	c.Flags().DurationVar(&window, "lookback", 10*time.Second, "with --follow: how far behind the newest message each poll re-reads for late ones")
	return c
}

// followMessages prints as it goes; message rows have fixed-width columns, so rows of
// different polls line up under the one header.
func (a *app) followMessages(ctx context.Context, f *follower, interval time.Duration) error {
	out := a.streams.Out
	if a.output == outputTable {
		if err := writeMessageLines(out, nil); err != nil {
			return err
		}
	}
	for {
		err := f.poll(ctx, func(m client.Message) error {
			if a.output == outputJSON {
				return writeJSONLine(out, m)
			}
			return writeMessageLine(out, messageRow(m))
		})
		if done(ctx) {
			// Ctrl+C is how --follow ends: not a failure.
			return nil
		}
		if err != nil {
			return fmt.Errorf("follow messages: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// done reports whether ctx ended (Ctrl+C, SIGTERM): the end of a run, not an error.
func done(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}
