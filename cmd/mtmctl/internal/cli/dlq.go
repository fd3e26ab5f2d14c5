package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/multitenant/mtm/client"
)

func (a *app) dlqCmd() *cobra.Command {
	return a.group("dlq", "List, redrive and purge a tenant's dead letters",
		a.dlqListCmd(), a.dlqRedriveCmd(), a.dlqPurgeCmd())
}

func (a *app) dlqListCmd() *cobra.Command {
	var (
		limit          int
		reason, status string
	)
	c := &cobra.Command{
		Use:   "list TENANT",
		Short: "List a tenant's archived dead letters, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			if err := checkLimit(limit); err != nil {
				return err
			}
			ctx, cl := cmd.Context(), a.client()
			id, err := a.resolveTenant(ctx, cl, args[0])
			if err != nil {
				return err
			}
			ds, err := collect(ctx, limit, func(cursor string, n int) ([]client.DeadLetter, string, error) {
				p, err := cl.DeadLetters(ctx, id, client.DeadLetterQuery{Cursor: cursor, Limit: n, Reason: reason, Status: status})
				return p.Data, p.NextCursor, err
			})
			if err != nil {
				return fmt.Errorf("list dead letters: %w", err)
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, ds)
			}
			h, rows := deadLetterRows(ds)
			return writeTable(a.streams.Out, h, rows)
		}),
	}
	limitFlag(c, &limit)
	c.Flags().StringVar(&reason, "reason", "", "only this reason (invalid_json, too_large, rejected_by_database, delivery_limit, expired, maxlen, rejected)")
	c.Flags().StringVar(&status, "status", "", "only this status (pending, redriven, purged)")
	return c
}

// selectorFlags are the dead-letter selection of redrive and purge.
type selectorFlags struct {
	sel     client.Selector
	ifMatch int
}

func (s *selectorFlags) register(c *cobra.Command, verb string) {
	f := c.Flags()
	f.StringSliceVar(&s.sel.IDs, "ids", nil, "dead-letter ids to "+verb+" (comma-separated); instead of --reason/--max")
	f.StringVar(&s.sel.Reason, "reason", "", "only pending dead letters with this reason (empty: any)")
	f.IntVar(&s.sel.Max, "max", 0, "at most this many, oldest first (0: the service's default)")
	f.BoolVar(&s.sel.DryRun, "dry-run", false, "only count what would be "+verb+"d")
	ifMatchFlag(c, &s.ifMatch)
}

// check refuses what the services would refuse as an empty selector, as a usage error.
func (s *selectorFlags) check() error {
	if s.sel.Max < 0 {
		return usagef("--max: must be 0 or more, got %d", s.sel.Max)
	}
	if len(s.sel.IDs) == 0 && s.sel.Reason == "" && s.sel.Max == 0 {
		return usagef("select dead letters: give --ids, or --reason and/or --max")
	}
	return nil
}

func (a *app) dlqRedriveCmd() *cobra.Command {
	var s selectorFlags
	c := &cobra.Command{
		Use:   "redrive TENANT",
		Short: "Publish pending dead letters into the tenant's queue again (--dry-run counts them)",
		Long: `Publish pending dead letters into the tenant's queue again, with their original
message ids, and mark them redriven. A message id is stored once, so a redrive never
duplicates a stored message; running the same redrive again moves nothing. If the broker
goes away part way the call fails saying how many moved: run it again for the rest.`,
		Args: cobra.ExactArgs(1),
		RunE: a.selectorAction(&s, "redrive", "redrove", func(ctx context.Context, cl *client.Client, id string) (any, int, int, error) {
			out, err := cl.Redrive(ctx, id, s.sel, s.ifMatch)
			return out, out.Matched, out.Version, err
		}),
	}
	s.register(c, "redrive")
	return c
}

func (a *app) dlqPurgeCmd() *cobra.Command {
	var s selectorFlags
	c := &cobra.Command{
		Use:   "purge TENANT",
		Short: "Mark pending dead letters purged: kept, never redriven (--dry-run counts them)",
		Args:  cobra.ExactArgs(1),
		RunE: a.selectorAction(&s, "purge", "purged", func(ctx context.Context, cl *client.Client, id string) (any, int, int, error) {
			out, err := cl.Purge(ctx, id, s.sel, s.ifMatch)
			return out, out.Purged, out.Version, err
		}),
	}
	s.register(c, "purge")
	return c
}

// selectorAction runs a redrive or purge (do) on the tenant named by the one argument
// and prints the API's answer, or a line saying how many dead letters it (would have)
// moved: verb and past name the action in that line.
func (a *app) selectorAction(s *selectorFlags, verb, past string,
	do func(ctx context.Context, cl *client.Client, id string) (out any, n, version int, err error),
) func(*cobra.Command, []string) error {
	return a.run(func(cmd *cobra.Command, args []string) error {
		if err := s.check(); err != nil {
			return err
		}
		ctx, cl := cmd.Context(), a.client()
		id, err := a.resolveTenant(ctx, cl, args[0])
		if err != nil {
			return err
		}
		out, n, version, err := do(ctx, cl, id)
		if err != nil {
			return fmt.Errorf("%s dead letters: %w", verb, err)
		}
		if a.output == outputJSON {
			return writeJSON(a.streams.Out, out)
		}
		if s.sel.DryRun {
			_, err = fmt.Fprintf(a.streams.Out, "would %s %d dead letters (dry run)\n", verb, n)
		} else {
			_, err = fmt.Fprintf(a.streams.Out, "%s %d dead letters (tenant version %d)\n", past, n, version)
		}
		return writeErr(err)
	})
}

func writeErr(err error) error {
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
