package httpserver

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/health"
	"github.com/multitenant/mtm/platform/metrics"
)

func TestRequestIDIsValidatedOrGenerated(t *testing.T) {
	s := newTestServer(t, health.New())
	for name, tc := range map[string]struct {
		sent string
		keep bool
	}{
		"valid id is kept":           {sent: "req-123.abc", keep: true},
		"at the limit is kept":       {sent: strings.Repeat("a", MaxIDLength), keep: true},
		"over the limit is replaced": {sent: strings.Repeat("a", 300)},
		"control byte is replaced":   {sent: "a\x01b"},
		"non-ASCII is replaced":      {sent: "caf\xc3\xa9"},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/healthz", nil)
			req.Header.Set("X-Request-ID", tc.sent)
			resp, err := s.App.Test(req, -1)
			require.NoError(t, err)
			got := resp.Header.Get("X-Request-ID")
			if tc.keep {
				require.Equal(t, tc.sent, got)
				return
			}
			_, err = uuid.Parse(got)
			require.NoError(t, err, "a generated request id replaces %q, got %q", tc.sent, got)
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newTestServer(t, health.New())
	s.App.Get("/swagger/*", func(c *fiber.Ctx) error { return c.SendString("<html></html>") })
	for _, path := range []string{"/healthz", "/problem", "/nowhere", "/swagger/index.html"} {
		resp, _ := do(t, s, "GET", path, "")
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), path)
	}
	resp, _ := do(t, s, "GET", "/swagger/index.html", "")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	resp, _ = do(t, s, "GET", "/healthz", "")
	require.Empty(t, resp.Header.Get("Content-Security-Policy"), "API answers need no CSP")
}

// Content-Length together with Transfer-Encoding is refused; only a real listener sees
// the raw request as a proxy would send it.
func TestContentLengthWithTransferEncodingIsRefused(t *testing.T) {
	s := newTestServer(t, health.New())
	require.NoError(t, s.Listen())
	go func() { _ = s.Run(context.Background()) }()
	t.Cleanup(func() { _ = s.Stop(context.Background()) })

	send := func(raw string) *http.Response {
		conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = conn.Write([]byte(raw))
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		return resp
	}
	both := "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
	resp := send(both)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, ProblemContentType, resp.Header.Get("Content-Type"))

	chunked := "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
	require.Equal(t, http.StatusOK, send(chunked).StatusCode, "chunked alone is fine")
	plain := "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	require.Equal(t, http.StatusOK, send(plain).StatusCode, "Content-Length alone is fine")
}

// With MetricsAddr set, /metrics moves to its own listener and is gone from the public one.
func TestMetricsOnSeparateListener(t *testing.T) {
	s := New(Options{Service: "test", Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Readiness: health.New(), Registry: metrics.NewRegistry()})
	require.NoError(t, s.Listen())
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, s.Stop(context.Background()))
		require.NoError(t, <-done)
	})
	require.NotEmpty(t, s.MetricsAddr())
	require.NotEqual(t, s.Addr(), s.MetricsAddr())

	get := func(url string) (int, string) {
		var status int
		var body string
		require.Eventually(t, func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			status, body = resp.StatusCode, string(raw)
			return true
		}, 5*time.Second, 10*time.Millisecond)
		return status, body
	}
	status, body := get("http://" + s.MetricsAddr() + "/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "go_goroutines")
	status, _ = get("http://" + s.Addr() + "/metrics")
	require.Equal(t, http.StatusNotFound, status, "not on the public listener")
	status, _ = get("http://" + s.Addr() + "/healthz")
	require.Equal(t, http.StatusOK, status)
}
