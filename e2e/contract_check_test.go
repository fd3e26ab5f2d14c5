//go:build integration

package e2e

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"
)

// routerOf builds the contract router of a service's generated document, as specRouter
// does for the served one.
func routerOf(t *testing.T, service string) routers.Router {
	t.Helper()
	b, err := os.ReadFile("../services/" + service + "/docs/openapi.json")
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(b)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	doc.Servers = openapi3.Servers{{URL: "http://svc"}}
	r, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return r
}

// TestContractCatchesMismatches shows the contract check failing on answers the specs do
// not describe, so a passing e2e run means the answers matched.
func TestContractCatchesMismatches(t *testing.T) {
	cmd, qry := routerOf(t, "command"), routerOf(t, "query")
	const id = "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f"
	problem := `{"type":"https://x/problems/tenant_not_found","title":"Not Found","status":404,"code":"tenant_not_found","detail":"no tenant with this id","instance":"/tenants/` + id + `"}`
	created := `{"id":"` + id + `","name":"acme","workers":1,"status":"active","version":1}`
	page := `{"data":[],"next_cursor":null}`
	cases := []struct {
		name           string
		router         routers.Router
		method, path   string
		reqBody        string
		status         int
		header         http.Header
		body, mismatch string // mismatch: "" when the exchange is valid
	}{
		{"valid create", cmd, "POST", "/tenants", `{"name":"acme"}`, 201,
			http.Header{"Content-Type": {"application/json"}, "Location": {"/tenants/" + id}, "Etag": {`"1"`}, "X-Request-Id": {"r"}}, created, ""},
		{"create without ETag", cmd, "POST", "/tenants", `{"name":"acme"}`, 201,
			http.Header{"Content-Type": {"application/json"}, "Location": {"/tenants/" + id}, "X-Request-Id": {"r"}}, created, "ETag"},
		{"create answering an undocumented status", cmd, "POST", "/tenants", `{"name":"acme"}`, 200,
			http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}}, created, "status"},
		{"error as application/json", qry, "GET", "/tenants/" + id, "", 404,
			http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}}, problem, "application/json"},
		{"valid 404", qry, "GET", "/tenants/" + id, "", 404,
			http.Header{"Content-Type": {"application/problem+json"}, "X-Request-Id": {"r"}}, problem, ""},
		{"valid last page", qry, "GET", "/tenants", "", 200,
			http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}}, page, ""},
		{"page without next_cursor", qry, "GET", "/tenants", "", 200,
			http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}}, `{"data":[]}`, "next_cursor"},
		{"unknown route", qry, "GET", "/nowhere", "", 404,
			http.Header{"Content-Type": {"application/problem+json"}}, problem, "no such operation"},
		{"invalid request accepted", qry, "GET", "/tenants?limit=0", "", 200,
			http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}}, page, "accepted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://svc"+tc.path, strings.NewReader(tc.reqBody))
			require.NoError(t, err)
			if tc.reqBody != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp := &http.Response{StatusCode: tc.status, Header: tc.header}
			err = check(tc.router, req, []byte(tc.reqBody), resp, []byte(tc.body))
			if tc.mismatch == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.mismatch)
		})
	}
}
