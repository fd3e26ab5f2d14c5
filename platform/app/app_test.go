package app

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
)

// A standalone service connects to nothing: no pool, no broker, no readiness checks of
// theirs, so it is ready at once with neither server running (the URLs point nowhere).
// OwnAuth leaves its routes to it while /metrics still needs an admin token.
func TestStandaloneNeedsNoDatabaseOrBroker(t *testing.T) {
	const secret = "standalone-test-secret-0123456789abcdef"
	base := &config.Base{
		DatabaseURL:     "postgres://nobody@127.0.0.1:1/none",
		RabbitMQURL:     "amqp://nobody@127.0.0.1:1/",
		HTTPAddr:        "127.0.0.1:0",
		JWTSecret:       secret,
		ShutdownTimeout: 5 * time.Second,
		LogLevel:        "error",
		LogFormat:       "text",
	}
	a, err := New(context.Background(), "standalone", base, Options{Standalone: true, OwnAuth: true})
	require.NoError(t, err)
	require.Nil(t, a.Pool)
	require.Nil(t, a.DB)
	require.Nil(t, a.Rabbit)
	require.ErrorIs(t, a.Migrate(context.Background()), errNoDatabase)
	a.HTTP.App.Get("/page", func(c *fiber.Ctx) error { return c.SendString("own auth") })
	require.NoError(t, a.HTTP.Listen())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	get := func(path, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+a.HTTP.Addr()+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	require.Eventually(t, func() bool { code, _ := get("/readyz", ""); return code == http.StatusOK }, 5*time.Second, 20*time.Millisecond)
	code, body := get("/page", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "own auth", body)
	code, _ = get("/metrics", "")
	require.Equal(t, http.StatusUnauthorized, code, "metrics keep the bearer check")
	admin, err := auth.Mint(auth.ConfigFrom(base), auth.RoleAdmin, "", time.Minute)
	require.NoError(t, err)
	code, body = get("/metrics", admin)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "service_ready")
}
