// Package cli implements mtmctl's commands on top of the client of the command and query
// services. Execute is the whole program: main only wires the process's streams, signals
// and environment in, which lets tests run commands in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/multitenant/mtm/client"
	"github.com/multitenant/mtm/platform/auth"
)

// Exit codes: scripts tell a failed call (retry, alert) from a wrong invocation (fix it).
const (
	ExitOK      = 0
	ExitFailure = 1 // the API or the network failed, or some lines did not publish
	ExitUsage   = 2 // bad flags, arguments or local configuration
)

// Environment variables that set the global flags' defaults.
const (
	EnvCommandURL = "MTM_COMMAND_URL"
	EnvQueryURL   = "MTM_QUERY_URL"
	EnvToken      = "MTM_TOKEN"
)

// Streams are the process's standard streams.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// errIsTerminal reports whether the error stream is a terminal, where a progress bar
// helps; redirected to a file or a CI log it would be noise.
func (s Streams) errIsTerminal() bool {
	f, ok := s.Err.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// usageError is a mistake in the invocation: exit 2 with the command's usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Output formats.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// app is one invocation: global flags and where output goes.
type app struct {
	streams                     Streams
	getenv                      func(string) string
	commandURL, queryURL, token string
	output                      string
	// running is set once a command's own code starts: cobra's errors before that
	// (unknown commands and flags, wrong argument counts) are usage errors.
	running bool
}

// Execute runs mtmctl with args and returns the process exit code. getenv supplies the
// MTM_* defaults and, for `token`, the JWT settings.
func Execute(ctx context.Context, args []string, s Streams, getenv func(string) string) int {
	a := &app{streams: s, getenv: getenv}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if !a.running || errors.As(err, &ue) {
		fmt.Fprintf(s.Err, "mtmctl: %v\n", err)
		if cmd != nil {
			fmt.Fprint(s.Err, cmd.UsageString())
		}
		return ExitUsage
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(s.Err, "mtmctl: %s\n", message(err))
	}
	return ExitFailure
}

// errReported exits 1 without another message: the command's output already said what
// failed (publish's per-line errors and its summary).
var errReported = errors.New("failure already reported")

// message is what an operator reads for a failed call: the service's problem detail
// (with its field errors) when there is one, the whole chain otherwise.
func message(err error) string {
	var p *client.Problem
	if errors.As(err, &p) {
		return p.Error()
	}
	return err.Error()
}

func (a *app) env(name, fallback string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return fallback
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "mtmctl",
		Short: "Operate the multi-tenant messaging services",
		Long: `mtmctl operates tenants, messages and dead letters through the command and query
services' REST APIs, with the caller's own token: it can do nothing the APIs refuse.

Exit codes: 0 success, 1 the API or the network failed (the problem's detail is on
stderr), 2 usage error.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.token == "" {
				// Read here, not as the flag's default: --help would print the token.
				a.token = a.getenv(EnvToken)
			}
			if a.output != outputTable && a.output != outputJSON {
				return usagef("-o: must be table or json, got %q", a.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.commandURL, "command-url", a.env(EnvCommandURL, "http://localhost:8080"), "command service base URL (env "+EnvCommandURL+")")
	pf.StringVar(&a.queryURL, "query-url", a.env(EnvQueryURL, "http://localhost:8081"), "query service base URL (env "+EnvQueryURL+")")
	pf.StringVar(&a.token, "token", "", "bearer token when the services run with JWT_SECRET (env "+EnvToken+")")
	pf.StringVarP(&a.output, "output", "o", outputTable, "output format: table or json")
	root.AddCommand(a.tenantsCmd(), a.messagesCmd(), a.dlqCmd(), a.eventsCmd(), a.publishCmd(), a.tokenCmd())
	return root
}

// run marks the start of a command's own code (see app.running).
func (a *app) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.running = true
		return fn(cmd, args)
	}
}

// group is a command that only holds subcommands: without one, or with an unknown one,
// it is a usage error (cobra would print the help and exit 0, hiding a typo in a script).
func (a *app) group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usagef("%s: missing subcommand", use)
		},
	}
	c.AddCommand(subs...)
	return c
}

func (a *app) client() *client.Client {
	return client.New(a.commandURL, a.queryURL, a.token)
}

// resolveTenant takes a tenant id, or a tenant name (unique, case-insensitive) looked up
// in the tenants the caller may see, so operators can type the names they chose.
func (a *app) resolveTenant(ctx context.Context, c *client.Client, arg string) (string, error) {
	if _, err := auth.ParseTenantID(arg); err == nil {
		return arg, nil
	}
	var found string
	err := walk(ctx, 0, func(cursor string, limit int) ([]client.Tenant, string, error) {
		p, err := c.ListTenants(ctx, cursor, limit)
		return p.Data, p.NextCursor, err
	}, func(t client.Tenant) error {
		if strings.EqualFold(t.Name, arg) {
			found = t.ID
			return errStopWalk
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("look up tenant %q: %w", arg, err)
	}
	if found == "" {
		return "", fmt.Errorf("no tenant with id or name %q", arg)
	}
	return found, nil
}

// errStopWalk ends a walk early without an error.
var errStopWalk = errors.New("stop walk")

// maxPage is the services' largest page.
const maxPage = 100

// walk fetches pages from the first until next is empty (or max items, 0: all) and calls
// each for every item in order.
func walk[T any](ctx context.Context, max int, page func(cursor string, limit int) ([]T, string, error), each func(T) error) error {
	cursor, seen := "", 0
	for {
		limit := maxPage
		if max > 0 && max-seen < limit {
			limit = max - seen
		}
		items, next, err := page(cursor, limit)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := each(it); err != nil {
				if errors.Is(err, errStopWalk) {
					return nil
				}
				return err
			}
			seen++
			if max > 0 && seen >= max {
				return nil
			}
		}
		if next == "" || ctx.Err() != nil {
			return ctx.Err()
		}
		cursor = next
	}
}

// collect walks into a slice (never nil: -o json prints [] for no items).
func collect[T any](ctx context.Context, max int, page func(cursor string, limit int) ([]T, string, error)) ([]T, error) {
	out := []T{}
	err := walk(ctx, max, page, func(t T) error { out = append(out, t); return nil })
	return out, err
}

// limitFlag adds --limit to a list command.
func limitFlag(c *cobra.Command, limit *int) {
	c.Flags().IntVar(limit, "limit", 0, "show at most this many items (0: all, walking every page)")
}

func checkLimit(limit int) error {
	if limit < 0 {
		return usagef("--limit: must be 0 (all) or more, got %d", limit)
	}
	return nil
}
