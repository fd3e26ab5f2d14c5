package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/health"
	"github.com/multitenant/mtm/platform/metrics"
)

func newTestServer(t *testing.T, ready *health.Readiness) *Server {
	t.Helper()
	s := New(Options{Service: "test", Addr: ":0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Readiness: ready, Registry: metrics.NewRegistry(), BodyLimit: 64})
	s.App.Get("/problem", func(c *fiber.Ctx) error {
		return Unprocessable("bad field", FieldError{Field: "workers", Detail: "must be an integer"})
	})
	s.App.Get("/internal", func(c *fiber.Ctx) error {
		return errors.New(`pq: relation "secret_table" does not exist`)
	})
	s.App.Get("/panic", func(c *fiber.Ctx) error { panic("boom") })
	s.App.Post("/echo", func(c *fiber.Ctx) error { return c.Send(c.Body()) })
	return s
}

func do(t *testing.T, s *Server, method, path, body string) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	resp, err := s.App.Test(req, -1)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp, m
}

func TestProblemResponses(t *testing.T) {
	s := newTestServer(t, health.New())
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/problem", "", 422, "validation_failed"},
		{"GET", "/internal", "", 500, "internal_error"},
		{"GET", "/panic", "", 500, "internal_error"},
		{"GET", "/no/such/route", "", 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := do(t, s, tc.method, tc.path, tc.body)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, ProblemContentType, resp.Header.Get("Content-Type"))
			require.Equal(t, tc.code, body["code"])
			require.EqualValues(t, tc.status, body["status"])
			require.Equal(t, tc.path, body["instance"])
			require.NotEmpty(t, body["type"])
			require.NotEmpty(t, body["title"])
			require.NotEmpty(t, resp.Header.Get("X-Request-ID"))
			raw, _ := json.Marshal(body)
			require.NotContains(t, string(raw), "secret_table", "internal error text must not leak")
		})
	}
	_, body := do(t, s, "GET", "/problem", "")
	require.Len(t, body["errors"], 1)
}

func TestProbes(t *testing.T) {
	ready := health.New()
	var dbErr error
	ready.Add("postgres", func(context.Context) error { return dbErr })
	s := newTestServer(t, ready)

	resp, _ := do(t, s, "GET", "/healthz", "")
	require.Equal(t, 200, resp.StatusCode)

	resp, body := do(t, s, "GET", "/readyz", "")
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "ready", body["status"])

	dbErr = errors.New("connection refused")
	resp, body = do(t, s, "GET", "/readyz", "")
	require.Equal(t, 503, resp.StatusCode)
	require.Equal(t, "unavailable", body["checks"].(map[string]any)["postgres"])

	dbErr = nil
	ready.SetDraining()
	resp, _ = do(t, s, "GET", "/readyz", "")
	require.Equal(t, 503, resp.StatusCode, "draining service is not ready")
	resp, _ = do(t, s, "GET", "/healthz", "")
	require.Equal(t, 200, resp.StatusCode, "draining service is still alive")
}

func TestMetricsRecordRoutes(t *testing.T) {
	s := newTestServer(t, health.New())
	do(t, s, "GET", "/problem", "")
	resp, _ := do(t, s, "GET", "/metrics", "")
	require.Equal(t, 200, resp.StatusCode)
	req := httptest.NewRequest("GET", "/metrics", nil)
	resp, err := s.App.Test(req, -1)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	require.Contains(t, string(raw), `http_request_duration_seconds_count{method="GET",route="/problem",status="422"} 1`)
}

// A body over the limit is rejected by fasthttp before routing; only a real listener
// exercises that path (app.Test short-circuits it).
func TestBodyTooLargeOverRealListener(t *testing.T) {
	s := newTestServer(t, health.New())
	require.NoError(t, s.Listen())
	go func() { _ = s.Run(context.Background()) }()
	t.Cleanup(func() { _ = s.Stop(context.Background()) })

	resp, err := http.Post("http://"+s.Addr()+"/echo", "application/json", strings.NewReader(strings.Repeat("x", 100)))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.Equal(t, ProblemContentType, resp.Header.Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "body_too_large", body["code"])
}
