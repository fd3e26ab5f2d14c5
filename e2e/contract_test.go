//go:build integration

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Contract tests: every request the e2e helpers send and every answer they get is
// checked against the OpenAPI 3 document the target service serves at /openapi.json, so
// the documents cannot drift from the code. An answer the document does not describe
// (status, media type, body, a declared header missing) fails the test; so does a
// request to a route it does not have, and a request it calls invalid that the service
// accepted with a 2xx. A request the document calls invalid that the service refuses
// (the error cases the tests provoke on purpose) is fine: that is the contract too.

// undocumented are paths outside the API: the documents themselves and Swagger UI.
var undocumented = []string{"/openapi.json", "/swagger"}

// specs caches one router per service process: the key is the service's address and the
// top-level test that started it (a later test may reuse a freed port for another service).
var specs = struct {
	sync.Mutex
	routers map[string]routers.Router
}{routers: map[string]routers.Router{}}

// httpClient is the client of every e2e helper: it validates against the served spec.
func httpClient(t *testing.T) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: contract{t: t, next: http.DefaultTransport}}
}

type contract struct {
	t    *testing.T
	next http.RoundTripper
}

func (c contract) RoundTrip(req *http.Request) (*http.Response, error) {
	for _, p := range undocumented {
		if strings.HasPrefix(req.URL.Path, p) {
			return c.next.RoundTrip(req)
		}
	}
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, fmt.Errorf("contract: read request body: %w", err)
		}
		_ = req.Body.Close()
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	router, err := specRouter(c.t, req.URL)
	if err != nil {
		c.t.Errorf("contract: %v", err)
		return c.next.RoundTrip(req)
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err //nolint:wrapcheck // the caller sees the transport's own error, as without this wrapper
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("contract: read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err := check(router, req, reqBody, resp, respBody); err != nil {
		c.t.Errorf("contract: %s %s -> %d: %v\nresponse body: %.500s", req.Method, req.URL.RequestURI(), resp.StatusCode, err, respBody)
	}
	return resp, nil
}

// check validates one exchange; the request is re-read from reqBody (the transport
// consumed the original).
func check(router routers.Router, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := router.FindRoute(r)
	if err != nil {
		return fmt.Errorf("the spec has no such operation: %w", err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			MultiError: true,
			// Tokens are the auth matrix's business; the spec's part is the 401 it documents.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && resp.StatusCode < 400 {
		return fmt.Errorf("the service accepted (%d) a request the spec calls invalid: %w", resp.StatusCode, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("the answer does not match the spec: %w", err)
	}
	return nil
}

// specRouter returns the router of the spec the service at u serves, fetching it once.
func specRouter(t *testing.T, u *url.URL) (routers.Router, error) {
	root, _, _ := strings.Cut(t.Name(), "/")
	key := root + " " + u.Host
	specs.Lock()
	defer specs.Unlock()
	if r, ok := specs.routers[key]; ok {
		return r, nil
	}
	doc, err := fetchSpec(u)
	if err != nil {
		return nil, err
	}
	// The documents name no host; route on the one the service runs at.
	doc.Servers = openapi3.Servers{{URL: u.Scheme + "://" + u.Host}}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router of %s's spec: %w", u.Host, err)
	}
	specs.routers[key] = r
	return r, nil
}

func fetchSpec(u *url.URL) (*openapi3.T, error) {
	src := u.Scheme + "://" + u.Host + "/openapi.json"
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(src)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", src, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", src, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: status %d", src, resp.StatusCode)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", src, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI 3 document: %w", src, err)
	}
	return doc, nil
}
