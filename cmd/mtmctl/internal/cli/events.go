package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/multitenant/mtm/client"
)

func (a *app) eventsCmd() *cobra.Command {
	var limit int
	c := &cobra.Command{
		Use:   "events TENANT",
		Short: "Show a tenant's event history, oldest first",
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
			es, err := collect(ctx, limit, func(cursor string, n int) ([]client.Event, string, error) {
				p, err := cl.Events(ctx, id, cursor, n)
				return p.Data, p.NextCursor, err
			})
			if err != nil {
				return fmt.Errorf("list events: %w", err)
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, es)
			}
			h, rows := eventRows(es)
			return writeTable(a.streams.Out, h, rows)
		}),
	}
	limitFlag(c, &limit)
	return c
}
