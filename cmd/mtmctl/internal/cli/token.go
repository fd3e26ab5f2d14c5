package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
)

func (a *app) tokenCmd() *cobra.Command {
	var (
		role, tenant string
		ttl          time.Duration
	)
	c := &cobra.Command{
		Use:   "token",
		Short: "Print a signed JWT for --role (needs JWT_SECRET, like the services)",
		Long: `Print a signed JWT, as 'bin/command -token' does: signed locally with JWT_SECRET (the
services' secret), with iss and aud from JWT_ISSUER and JWT_AUDIENCE when set, valid for
--ttl (at most JWT_MAX_TTL, default 24h). Nothing is called. Use it as --token or
MTM_TOKEN:

  export MTM_TOKEN=$(JWT_SECRET=... mtmctl token --role tenant --tenant <id> --ttl 1h)`,
		Args: cobra.NoArgs,
		RunE: a.run(func(*cobra.Command, []string) error {
			cfg, err := a.jwtConfig()
			if err != nil {
				return usageError{err}
			}
			tok, err := mintToken(cfg, role, tenant, ttl)
			if err != nil {
				return usageError{err}
			}
			if a.output == outputJSON {
				return writeJSON(a.streams.Out, map[string]string{"token": tok})
			}
			_, err = fmt.Fprintln(a.streams.Out, tok)
			return writeErr(err)
		}),
	}
	c.Flags().StringVar(&role, "role", string(auth.RoleAdmin), "admin or tenant")
	c.Flags().StringVar(&tenant, "tenant", "", "with --role tenant: the tenant id")
	c.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	return c
}

// jwtConfig reads only the JWT settings, with the services' defaults and checks: the
// rest of their configuration (database, broker) means nothing to a client.
func (a *app) jwtConfig() (auth.Config, error) {
	cfg := auth.Config{Secret: a.getenv("JWT_SECRET"), Issuer: a.getenv("JWT_ISSUER"), Audience: a.getenv("JWT_AUDIENCE"), MaxTTL: 24 * time.Hour}
	if cfg.Secret == "" {
		return cfg, errors.New("JWT_SECRET: not set; cannot sign a token")
	}
	if len(cfg.Secret) < config.MinJWTSecretBytes {
		return cfg, fmt.Errorf("JWT_SECRET: must be at least %d bytes (got %d), as the services require", config.MinJWTSecretBytes, len(cfg.Secret))
	}
	if raw := a.getenv("JWT_MAX_TTL"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("JWT_MAX_TTL: must be a positive duration, got %q", raw)
		}
		cfg.MaxTTL = d
	}
	return cfg, nil
}

// mintToken is auth.Mint with its errors named after mtmctl's flags.
func mintToken(cfg auth.Config, role, tenant string, ttl time.Duration) (string, error) {
	if auth.Role(role) == auth.RoleAdmin && tenant != "" {
		return "", errors.New("--tenant: only with --role tenant")
	}
	tok, err := auth.Mint(cfg, auth.Role(role), tenant, ttl)
	switch {
	case errors.Is(err, auth.ErrMintRole):
		return "", fmt.Errorf("--role: must be admin or tenant, got %q", role)
	case errors.Is(err, auth.ErrMintTenantID):
		return "", fmt.Errorf("--tenant: --role tenant needs a tenant id (UUID), got %q", tenant)
	case errors.Is(err, auth.ErrMintTTL):
		return "", fmt.Errorf("--ttl: must be positive and at most JWT_MAX_TTL (%s), got %s", cfg.MaxTTL, ttl)
	case err != nil:
		return "", fmt.Errorf("mint token: %w", err)
	}
	return tok, nil
}
