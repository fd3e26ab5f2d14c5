package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/multitenant/mtm/client"
)

func (a *app) tenantsCmd() *cobra.Command {
	return a.group("tenants", "List, create, resize, pause, resume and delete tenants",
		a.tenantsListCmd(), a.tenantsGetCmd(), a.tenantsCreateCmd(), a.tenantsResizeCmd(),
		a.tenantsStatusCmd("pause", "Stop the tenant's consumers; its queue keeps accepting messages", (*client.Client).Pause),
		a.tenantsStatusCmd("resume", "Start a paused tenant's workers again", (*client.Client).Resume),
		a.tenantsDeleteCmd())
}

// ifMatchFlag adds --if-match: the change applies only if the tenant is still at that
// version (412 otherwise), so a script does not act on a tenant someone else just changed.
func ifMatchFlag(c *cobra.Command, v *int) {
	c.Flags().IntVar(v, "if-match", 0, "apply only if the tenant is still at this version (0: unconditionally)")
}

func (a *app) tenantsListCmd() *cobra.Command {
	var limit int
	c := &cobra.Command{
		Use:   "list",
		Short: "List the tenants you may see (all for an admin token)",
		Args:  cobra.NoArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			if err := checkLimit(limit); err != nil {
				return err
			}
			ctx, cl := cmd.Context(), a.client()
			ts, err := collect(ctx, limit, func(cursor string, n int) ([]client.Tenant, string, error) {
				p, err := cl.ListTenants(ctx, cursor, n)
				return p.Data, p.NextCursor, err
			})
			if err != nil {
				return fmt.Errorf("list tenants: %w", err)
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, ts)
			}
			h, rows := tenantRows(ts)
			return writeTable(a.streams.Out, h, rows)
		}),
	}
	limitFlag(c, &limit)
	return c
}

func (a *app) tenantsGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get TENANT",
		Short: "Show one tenant (by id or name): status, workers, backlog, dead letters, drain",
		Args:  cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			ctx, cl := cmd.Context(), a.client()
			id, err := a.resolveTenant(ctx, cl, args[0])
			if err != nil {
				return err
			}
			t, err := cl.GetTenant(ctx, id)
			if err != nil {
				return fmt.Errorf("get tenant: %w", err)
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, t)
			}
			return writeFields(a.streams.Out, tenantFields(t))
		}),
	}
}

func (a *app) tenantsCreateCmd() *cobra.Command {
	var workers int
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a tenant (its queue exists when this returns)",
		Args:  cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			if workers < 0 {
				return usagef("--workers: must be 0 (the service's default) or more, got %d", workers)
			}
			out, err := a.client().CreateTenant(cmd.Context(), args[0], workers)
			if err != nil {
				return fmt.Errorf("create tenant: %w", err)
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, out)
			}
			f := [][2]string{{"ID", out.ID}, {"Name", out.Name}, {"Status", out.Status}, {"Workers", itoa(out.Workers)}, {"Version", itoa(out.Version)}}
			if am := out.AMQP; am != nil {
				f = append(f, [2]string{"AMQP user", am.Username}, [2]string{"AMQP password", am.Password + "   (shown only now: keep it)"},
					[2]string{"AMQP vhost", am.VHost}, [2]string{"AMQP exchange", am.Exchange})
			}
			return writeFields(a.streams.Out, f)
		}),
	}
	c.Flags().IntVar(&workers, "workers", 0, "workers to run (0: the service's WORKERS default)")
	return c
}

func (a *app) tenantsResizeCmd() *cobra.Command {
	var ifMatch int
	c := &cobra.Command{
		Use:   "resize TENANT WORKERS",
		Short: "Set the tenant's desired worker count (a paused tenant stays paused)",
		Args:  cobra.ExactArgs(2),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			workers, err := strconv.Atoi(args[1])
			if err != nil {
				return usagef("WORKERS: not an integer: %q", args[1])
			}
			ctx, cl := cmd.Context(), a.client()
			id, err := a.resolveTenant(ctx, cl, args[0])
			if err != nil {
				return err
			}
			out, err := cl.Resize(ctx, id, workers, ifMatch)
			if err != nil {
				return fmt.Errorf("resize tenant: %w", err)
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, out)
			}
			return writeTable(a.streams.Out, []string{"ID", "WORKERS", "VERSION"}, [][]string{{out.ID, itoa(out.Workers), itoa(out.Version)}})
		}),
	}
	ifMatchFlag(c, &ifMatch)
	return c
}

// statusChange is Pause or Resume.
type statusChange func(c *client.Client, ctx context.Context, id string, ifMatch int) (client.StatusChange, error)

func (a *app) tenantsStatusCmd(verb, short string, call statusChange) *cobra.Command {
	var ifMatch int
	c := &cobra.Command{
		Use:   verb + " TENANT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			ctx, cl := cmd.Context(), a.client()
			id, err := a.resolveTenant(ctx, cl, args[0])
			if err != nil {
				return err
			}
			out, err := call(cl, ctx, id, ifMatch)
			if err != nil {
				return fmt.Errorf("%s tenant: %w", verb, err)
			}
			return a.writeStatusChange(out)
		}),
	}
	ifMatchFlag(c, &ifMatch)
	return c
}

func (a *app) writeStatusChange(out client.StatusChange) error {
	if a.output == outputJSON {
		return writeJSON(a.streams.Out, out)
	}
	return writeTable(a.streams.Out, []string{"ID", "STATUS", "VERSION"}, [][]string{{out.ID, out.Status, itoa(out.Version)}})
}

func (a *app) tenantsDeleteCmd() *cobra.Command {
	var (
		drain        bool
		drainTimeout time.Duration
		ifMatch      int
	)
	c := &cobra.Command{
		Use:   "delete TENANT",
		Short: "Delete a tenant: at once (destroying queued and stored messages and dead letters), or with --drain once its queue is empty",
		Long: `Delete a tenant.

Without --drain the tenant is destroyed at once: the messages still in its queue, its
stored messages and its dead letters. With --drain, HTTP ingest is refused from now on,
the consumer keeps storing, and the tenant is deleted once its queue is empty; if that
does not happen within --drain-timeout nothing is deleted and the tenant stays
"draining (timed out)": drain again to re-arm, or delete without --drain.`,
		Args: cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("drain-timeout") && !drain {
				return usagef("--drain-timeout: only with --drain")
			}
			ctx, cl := cmd.Context(), a.client()
			id, err := a.resolveTenant(ctx, cl, args[0])
			if err != nil {
				return err
			}
			out, err := cl.Delete(ctx, id, client.DeleteOptions{Drain: drain, DrainTimeout: drainTimeout, IfMatch: ifMatch})
			if err != nil {
				return fmt.Errorf("delete tenant: %w", err)
			}
			return a.writeStatusChange(out)
		}),
	}
	c.Flags().BoolVar(&drain, "drain", false, "delete only once the queue is empty (ingest is refused meanwhile)")
	c.Flags().DurationVar(&drainTimeout, "drain-timeout", 0, "with --drain: give up (deleting nothing) after this long, 1s..24h (default: the service's, 5m)")
	ifMatchFlag(c, &ifMatch)
	return c
}
