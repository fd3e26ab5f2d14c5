// Command console is the operations web console of Multi-Tenant Messaging. It holds no
// state and connects to no database or broker: every page is a call to the command and
// query services made with the signed-in operator's own token. main only wires.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/multitenant/mtm/client"
	"github.com/multitenant/mtm/platform/app"
	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
	"github.com/multitenant/mtm/services/console/internal/web"
)

// Config is the console's configuration.
type Config struct {
	config.Base
	CommandURL string `env:"COMMAND_URL" envDefault:"http://localhost:8080"`
	QueryURL   string `env:"QUERY_URL" envDefault:"http://localhost:8081"`
	// CSRFKey signs the forms' CSRF tokens and the flash cookies. Empty: a random key per
	// process, so a form loaded before a restart (or from another replica) is refused
	// once; set the same value on every replica behind one load balancer.
	CSRFKey string `env:"CSRF_KEY"`
	// UpstreamTimeout bounds one call to the command or query service.
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"30s"`
}

// minCSRFKeyBytes matches the JWT secret's floor: the key is an HMAC key of the same kind.
const minCSRFKeyBytes = config.MinJWTSecretBytes

// Validate checks the console-specific settings.
func (c *Config) Validate() error {
	if err := checkServiceURL("COMMAND_URL", c.CommandURL); err != nil {
		return err
	}
	if err := checkServiceURL("QUERY_URL", c.QueryURL); err != nil {
		return err
	}
	if c.CSRFKey != "" && len(c.CSRFKey) < minCSRFKeyBytes {
		return fmt.Errorf("CSRF_KEY: must be at least %d bytes (got %d); generate one with: openssl rand -base64 48", minCSRFKeyBytes, len(c.CSRFKey))
	}
	if c.UpstreamTimeout <= 0 {
		return fmt.Errorf("UPSTREAM_TIMEOUT: must be positive, got %s", c.UpstreamTimeout)
	}
	return nil
}

// checkServiceURL accepts an http(s) base URL with a host; the parser's own message is
// not echoed, as it would quote any credentials in the URL.
func checkServiceURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: must be an http:// or https:// URL with a host", name)
	}
	return nil
}

func main() {
	var cfg Config
	boot := app.Configure("console", &cfg, &cfg.Base, ":8083")
	ctx := context.Background()
	a := boot.Start(ctx, app.Options{Standalone: true, OwnAuth: true})

	key, err := csrfKey(cfg.CSRFKey)
	if err != nil {
		a.Fatal("csrf key", err)
	}
	if cfg.CSRFKey == "" {
		a.Log.Info("CSRF_KEY is not set: forms are signed with a per-process key (set it when running more than one replica)")
	}
	upstream := client.New(cfg.CommandURL, cfg.QueryURL, "").
		WithHTTPClient(&http.Client{Timeout: cfg.UpstreamTimeout})
	// The probes carry no token: /readyz is public on both services.
	a.Ready.Add("command", upstream.CommandReady)
	a.Ready.Add("query", upstream.QueryReady)

	srv, err := web.New(web.Options{
		Client: upstream,
		Auth:   auth.ConfigFrom(&cfg.Base),
		Key:    key,
		Log:    a.Log,
	})
	if err != nil {
		a.Fatal("console pages", err)
	}
	srv.Register(a.HTTP.App)
	a.Serve(ctx)
}

// csrfKey is the configured key, or 32 random bytes.
func csrfKey(configured string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, errors.Join(errors.New("random CSRF key"), err)
	}
	return k, nil
}
