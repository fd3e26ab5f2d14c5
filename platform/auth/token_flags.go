package auth

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// TokenFlags are the operator flags that make a binary print a signed token and exit
// instead of serving: -token [-role admin|tenant] [-tenant <id>] [-ttl 1h].
type TokenFlags struct {
	Token  bool
	Role   string
	Tenant string
	TTL    time.Duration
}

// RegisterTokenFlags defines -token, -role, -tenant and -ttl on fs (main passes
// flag.CommandLine) so they parse together with the binary's other flags.
func RegisterTokenFlags(fs *flag.FlagSet) *TokenFlags {
	f := &TokenFlags{}
	fs.BoolVar(&f.Token, "token", false, "print a signed JWT for -role (needs JWT_SECRET) and exit")
	fs.StringVar(&f.Role, "role", string(RoleAdmin), "with -token: admin or tenant")
	fs.StringVar(&f.Tenant, "tenant", "", "with -token -role tenant: the tenant id (UUID)")
	fs.DurationVar(&f.TTL, "ttl", time.Hour, "with -token: how long the token is valid")
	return f
}

// Requested reports whether -token was given.
func (f *TokenFlags) Requested() bool { return f.Token }

// Print mints the token the flags describe and writes it, newline-terminated, to w.
// Errors name the flag or variable at fault, for a one-line operator message.
func (f *TokenFlags) Print(cfg Config, w io.Writer) error {
	role := Role(f.Role)
	if role == RoleAdmin && f.Tenant != "" {
		return errors.New("-tenant: only valid with -role tenant")
	}
	tok, err := Mint(cfg, role, f.Tenant, f.TTL)
	switch {
	case errors.Is(err, ErrSecretNotSet):
		return errors.New("JWT_SECRET: not set; cannot sign a token")
	case errors.Is(err, ErrMintRole):
		return fmt.Errorf("-role: must be admin or tenant, got %q", f.Role)
	case errors.Is(err, ErrMintTenantID):
		return fmt.Errorf("-tenant: -role tenant needs a tenant UUID, got %q", f.Tenant)
	case errors.Is(err, ErrMintTTL):
		return fmt.Errorf("-ttl: must be positive and at most JWT_MAX_TTL (%s), got %s", cfg.MaxTTL, f.TTL)
	case err != nil:
		return err
	}
	if _, err := fmt.Fprintln(w, tok); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	return nil
}
