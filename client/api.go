package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Tenant statuses as the services show them.
const (
	StatusActive   = "active"
	StatusPaused   = "paused"
	StatusDraining = "draining"
)

// Workers are a tenant's desired and running worker counts.
type Workers struct {
	Desired int `json:"desired"`
	Current int `json:"current"`
	// Owner is the consumer replica that runs the tenant (nil before its first report).
	Owner    *string  `json:"owner"`
	Replicas []string `json:"replicas"`
}

// RateLimit is a tenant's own ingest limit.
type RateLimit struct {
	PerSecond int `json:"per_second"`
	Burst     int `json:"burst"`
}

// Drain is a draining tenant's drain-then-delete.
type Drain struct {
	RequestedAt time.Time `json:"requested_at"`
	Deadline    time.Time `json:"deadline"`
	TimedOut    bool      `json:"timed_out"`
}

// Backlog is the tenant's queue as the consumer last sampled it.
type Backlog struct {
	Ready      int64     `json:"ready"`
	Unacked    int64     `json:"unacked"`
	LagSeconds float64   `json:"lag_seconds"`
	SampledAt  time.Time `json:"sampled_at"`
}

// Tenant is a tenant as the query service shows it.
type Tenant struct {
	ID                 string     `json:"id"`
	Name               string     `json:"name"`
	Status             string     `json:"status"`
	Workers            Workers    `json:"workers"`
	Drain              *Drain     `json:"drain,omitempty"`
	DeadLettersPending int        `json:"dead_letters_pending"`
	Backlog            *Backlog   `json:"backlog,omitempty"`
	RateLimit          *RateLimit `json:"rate_limit"`
	Queue              string     `json:"queue"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	Version            int        `json:"version"`
}

// TenantPage is one page of tenants; NextCursor is "" on the last page.
type TenantPage struct {
	Data       []Tenant `json:"data"`
	NextCursor string   `json:"next_cursor"`
}

// Message is one stored message.
type Message struct {
	ID        string          `json:"id"`
	TenantID  string          `json:"tenant_id"`
	Payload   json.RawMessage `json:"payload"`
	CreatedAt time.Time       `json:"created_at"`
}

// MessagePage is one page of a tenant's messages, oldest first.
type MessagePage struct {
	Data       []Message `json:"data"`
	NextCursor string    `json:"next_cursor"`
}

// DeadLetter is one archived dead letter. Payload is set when the body is valid JSON,
// else PayloadBase64 (with PayloadEncoding "base64").
type DeadLetter struct {
	ID                  string          `json:"id"`
	MessageID           string          `json:"message_id"`
	Reason              string          `json:"reason"`
	ReasonDetail        string          `json:"reason_detail"`
	Status              string          `json:"status"`
	Deaths              int             `json:"deaths"`
	FirstDeadLetteredAt time.Time       `json:"first_dead_lettered_at"`
	LastDeadLetteredAt  time.Time       `json:"last_dead_lettered_at"`
	Headers             json.RawMessage `json:"headers"`
	Size                int             `json:"size"`
	Payload             json.RawMessage `json:"payload,omitempty"`
	PayloadBase64       string          `json:"payload_base64,omitempty"`
	PayloadEncoding     string          `json:"payload_encoding,omitempty"`
}

// DeadLetterPage is one page of a tenant's dead letters, oldest first.
type DeadLetterPage struct {
	Data       []DeadLetter `json:"data"`
	NextCursor string       `json:"next_cursor"`
}

// DeadLetterQuery filters and pages dead letters; zero values mean no filter and the
// service's default page size.
type DeadLetterQuery struct {
	Cursor string
	Limit  int
	Reason string
	Status string
}

// Event is one event of a tenant's history.
type Event struct {
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	CorrelationID string          `json:"correlation_id"`
	Data          json.RawMessage `json:"data"`
}

// EventPage is one page of a tenant's history, oldest first.
type EventPage struct {
	Data       []Event `json:"data"`
	NextCursor string  `json:"next_cursor"`
}

// AMQPCredentials are a tenant's own broker account (shown once, at creation).
type AMQPCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	VHost    string `json:"vhost"`
	Exchange string `json:"exchange"`
}

// Created is the answer to a tenant creation.
type Created struct {
	ID      string           `json:"id"`
	Name    string           `json:"name"`
	Workers int              `json:"workers"`
	Status  string           `json:"status"`
	Version int              `json:"version"`
	AMQP    *AMQPCredentials `json:"amqp,omitempty"`
}

// Resized is the answer to a resize.
type Resized struct {
	ID      string `json:"id"`
	Workers int    `json:"workers"`
	Version int    `json:"version"`
}

// StatusChange is the answer to a pause, resume or delete.
type StatusChange struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version int    `json:"version"`
}

// Selector picks pending dead letters: by IDs, or by Reason (empty: any) up to Max
// (0: the service's default), oldest first. DryRun only counts.
type Selector struct {
	IDs    []string `json:"ids,omitempty"`
	Reason string   `json:"reason,omitempty"`
	Max    int      `json:"max,omitempty"`
	DryRun bool     `json:"dry_run,omitempty"`
}

// RedriveResult is how many dead letters were (or, on a dry run, would be) redriven;
// Version is 0 on a dry run.
type RedriveResult struct {
	Matched int `json:"matched"`
	Version int `json:"version,omitempty"`
}

// PurgeResult is how many dead letters were (or would be) purged.
type PurgeResult struct {
	Purged  int `json:"purged"`
	Version int `json:"version"`
}

// Accepted is the id a published message is stored under.
type Accepted struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
}

// DeleteOptions: Drain deletes only once the queue is empty (DrainTimeout bounds the
// wait; 0 is the service's default); IfMatch > 0 sends If-Match.
type DeleteOptions struct {
	Drain        bool
	DrainTimeout time.Duration
	IfMatch      int
}

// ListTenants returns one page of tenants (a tenant token sees only its own).
func (c *Client) ListTenants(ctx context.Context, cursor string, limit int) (TenantPage, error) {
	var p TenantPage
	err := c.do(ctx, request{method: http.MethodGet, base: c.queryURL, path: "/tenants", query: pageQuery(cursor, limit)}, &p)
	return p, err
}

// GetTenant returns one tenant.
func (c *Client) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := c.do(ctx, request{method: http.MethodGet, base: c.queryURL, path: tenantPath(id)}, &t)
	return t, err
}

// CreateTenant creates a tenant; workers 0 takes the service's default.
func (c *Client) CreateTenant(ctx context.Context, name string, workers int) (Created, error) {
	body := map[string]any{"name": name}
	if workers != 0 {
		body["workers"] = workers
	}
	var out Created
	err := c.do(ctx, request{method: http.MethodPost, base: c.commandURL, path: "/tenants", body: body}, &out)
	return out, err
}

// Resize sets the tenant's desired worker count.
func (c *Client) Resize(ctx context.Context, id string, workers, ifMatch int) (Resized, error) {
	var out Resized
	err := c.do(ctx, request{method: http.MethodPut, base: c.commandURL, path: tenantPath(id, "/config/concurrency"),
		body: map[string]int{"workers": workers}, ifMatch: ifMatch}, &out)
	return out, err
}

// Pause stops the tenant's consumption; its queue keeps accepting messages.
func (c *Client) Pause(ctx context.Context, id string, ifMatch int) (StatusChange, error) {
	var out StatusChange
	err := c.do(ctx, request{method: http.MethodPost, base: c.commandURL, path: tenantPath(id, "/pause"), ifMatch: ifMatch}, &out)
	return out, err
}

// Resume restarts a paused tenant's workers.
func (c *Client) Resume(ctx context.Context, id string, ifMatch int) (StatusChange, error) {
	var out StatusChange
	err := c.do(ctx, request{method: http.MethodPost, base: c.commandURL, path: tenantPath(id, "/resume"), ifMatch: ifMatch}, &out)
	return out, err
}

// Delete deletes the tenant: at once (destroying its queued and stored messages and
// dead letters), or with opts.Drain once its queue is empty.
func (c *Client) Delete(ctx context.Context, id string, opts DeleteOptions) (StatusChange, error) {
	q := url.Values{}
	if opts.Drain {
		q.Set("drain", "true")
		if opts.DrainTimeout > 0 {
			q.Set("drain_timeout", opts.DrainTimeout.String())
		}
	}
	var out StatusChange
	err := c.do(ctx, request{method: http.MethodDelete, base: c.commandURL, path: tenantPath(id), query: q, ifMatch: opts.IfMatch}, &out)
	return out, err
}

// Messages returns one page of the tenant's stored messages, oldest first.
func (c *Client) Messages(ctx context.Context, id, cursor string, limit int) (MessagePage, error) {
	var p MessagePage
	err := c.do(ctx, request{method: http.MethodGet, base: c.queryURL, path: tenantPath(id, "/messages"), query: pageQuery(cursor, limit)}, &p)
	return p, err
}

// DeadLetters returns one page of the tenant's dead letters, oldest first.
func (c *Client) DeadLetters(ctx context.Context, id string, dq DeadLetterQuery) (DeadLetterPage, error) {
	q := pageQuery(dq.Cursor, dq.Limit)
	if dq.Reason != "" {
		q.Set("reason", dq.Reason)
	}
	if dq.Status != "" {
		q.Set("status", dq.Status)
	}
	var p DeadLetterPage
	err := c.do(ctx, request{method: http.MethodGet, base: c.queryURL, path: tenantPath(id, "/dead-letters"), query: q}, &p)
	return p, err
}

// Events returns one page of the tenant's event history, oldest first.
func (c *Client) Events(ctx context.Context, id, cursor string, limit int) (EventPage, error) {
	var p EventPage
	err := c.do(ctx, request{method: http.MethodGet, base: c.queryURL, path: tenantPath(id, "/events"), query: pageQuery(cursor, limit)}, &p)
	return p, err
}

// Redrive republishes the selected pending dead letters into the tenant's queue (or,
// with sel.DryRun, counts them).
func (c *Client) Redrive(ctx context.Context, id string, sel Selector, ifMatch int) (RedriveResult, error) {
	var out RedriveResult
	err := c.do(ctx, request{method: http.MethodPost, base: c.commandURL, path: tenantPath(id, "/dead-letters/redrive"), body: sel, ifMatch: ifMatch}, &out)
	return out, err
}

// Purge marks the selected pending dead letters purged (or, with sel.DryRun, counts them).
func (c *Client) Purge(ctx context.Context, id string, sel Selector, ifMatch int) (PurgeResult, error) {
	var out PurgeResult
	err := c.do(ctx, request{method: http.MethodDelete, base: c.commandURL, path: tenantPath(id, "/dead-letters"), body: sel, ifMatch: ifMatch}, &out)
	return out, err
}

// Publish sends one JSON message through the command service, which answers once the
// broker confirmed it. A non-empty idempotencyKey makes retries store it once.
func (c *Client) Publish(ctx context.Context, id string, body json.RawMessage, idempotencyKey string) (Accepted, error) {
	var h map[string]string
	if idempotencyKey != "" {
		h = map[string]string{"Idempotency-Key": idempotencyKey}
	}
	var out Accepted
	err := c.do(ctx, request{method: http.MethodPost, base: c.commandURL, path: tenantPath(id, "/messages"), body: []byte(body), header: h}, &out)
	return out, err
}
