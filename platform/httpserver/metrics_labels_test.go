package httpserver

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/health"
)

// TestMetricLabelsSurviveBufferReuse: Fiber's c.Method() aliases a pooled request
// buffer; a label stored without copying later reads as another request's method and
// /metrics fails with "collected before with the same name and label values".
func TestMetricLabelsSurviveBufferReuse(t *testing.T) {
	s := newTestServer(t, health.New())
	for _, m := range []string{"GET", "DELETE", "GET", "PATCH", "GET", "PUT", "GET"} {
		resp, _ := do(t, s, m, "/no/such/route", "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
	resp, _ := do(t, s, "GET", "/metrics", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
