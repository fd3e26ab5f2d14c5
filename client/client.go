// Package client is a Go client of the command and query services' REST APIs, shared by
// the operations console and mtmctl. It adds nothing the APIs do not do: every call
// carries the caller's own token, and every error answer comes back as a *Problem with
// the service's problem+json detail.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one command service and one query service.
type Client struct {
	commandURL, queryURL string
	token                string
	correlationID        string
	http                 *http.Client
}

// New returns a client of the services at commandURL and queryURL (e.g.
// http://localhost:8080 and http://localhost:8081). token may be empty when the
// services run without authentication.
func New(commandURL, queryURL, token string) *Client {
	return &Client{
		commandURL: strings.TrimRight(commandURL, "/"),
		queryURL:   strings.TrimRight(queryURL, "/"),
		token:      token,
		http:       &http.Client{Timeout: 30 * time.Second},
	}
}

// WithToken returns a copy of c that sends token instead (the console calls with each
// operator's own token).
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// WithCorrelationID returns a copy of c that sends X-Correlation-ID, which the command
// service records on the events a call causes.
func (c *Client) WithCorrelationID(id string) *Client {
	cp := *c
	cp.correlationID = id
	return &cp
}

// WithHTTPClient returns a copy of c that uses hc (timeouts, transports).
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	cp := *c
	cp.http = hc
	return &cp
}

// CommandURL and QueryURL are the services' base URLs.
func (c *Client) CommandURL() string { return c.commandURL }

// QueryURL is the query service's base URL.
func (c *Client) QueryURL() string { return c.queryURL }

// FieldError is one invalid field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Problem is an RFC 9457 error answer of either service.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail"`
	Instance string       `json:"instance"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`
}

func (p *Problem) Error() string {
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	for _, f := range p.Errors {
		msg += "; " + f.Field + ": " + f.Detail
	}
	return msg
}

// IsStatus reports whether err is a *Problem with that HTTP status.
func IsStatus(err error, status int) bool {
	var p *Problem
	return errors.As(err, &p) && p.Status == status
}

// IsCode reports whether err is a *Problem with that code (e.g. "tenant_not_found").
func IsCode(err error, code string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Code == code
}

// request is one API call.
type request struct {
	method, base, path string
	query              url.Values
	body               any // JSON-encoded unless []byte (sent as is)
	ifMatch            int // 0: no If-Match
	header             map[string]string
}

// do sends r and decodes a 2xx JSON answer into out (nil: ignore the body).
func (c *Client) do(ctx context.Context, r request, out any) error {
	u := r.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.correlationID != "" {
		req.Header.Set("X-Correlation-ID", c.correlationID)
	}
	if r.ifMatch > 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.Itoa(r.ifMatch)))
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.method, u, err)
	}
	defer resp.Body.Close()
	// Answers are small (a page is bounded by the services); 32 MiB guards against a
	// misdirected URL streaming something else.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", r.method, u, err)
	}
	if resp.StatusCode >= 300 {
		return decodeProblem(resp, raw)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", r.method, u, err)
	}
	return nil
}

// decodeProblem turns an error answer into a *Problem; an answer that is not
// problem+json (a proxy's HTML page) still gives one, with its status.
func decodeProblem(resp *http.Response, raw []byte) error {
	p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		if err := json.Unmarshal(raw, p); err == nil {
			p.Status = resp.StatusCode
			return p
		}
	}
	if text := strings.TrimSpace(string(raw)); text != "" && len(text) < 300 {
		p.Detail = text
	} else {
		p.Detail = fmt.Sprintf("%s answered %d %s", resp.Request.URL.Host, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return p
}

func tenantPath(id string, rest ...string) string {
	return "/tenants/" + url.PathEscape(id) + strings.Join(rest, "")
}

func pageQuery(cursor string, limit int) url.Values {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// Ready checks that both services answer /readyz with 200.
func (c *Client) Ready(ctx context.Context) error {
	if err := c.CommandReady(ctx); err != nil {
		return err
	}
	return c.QueryReady(ctx)
}

// CommandReady checks that the command service answers /readyz with 200.
func (c *Client) CommandReady(ctx context.Context) error { return c.readyz(ctx, c.commandURL) }

// QueryReady checks that the query service answers /readyz with 200.
func (c *Client) QueryReady(ctx context.Context) error { return c.readyz(ctx, c.queryURL) }

func (c *Client) readyz(ctx context.Context, base string) error {
	if err := c.do(ctx, request{method: http.MethodGet, base: base, path: "/readyz"}, nil); err != nil {
		return fmt.Errorf("%s not ready: %w", base, err)
	}
	return nil
}
