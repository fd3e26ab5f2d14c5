// Package rabbitadmin is a small client of the RabbitMQ management HTTP API: users, their
// permissions and their connections, and policies. Every call is bounded by a timeout. Errors name the
// method, path and status with a short excerpt of the broker's answer: they are for the
// log, never for HTTP clients. Nothing here ever holds or prints the management password
// outside the Authorization header.
package rabbitadmin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds one management call when New is given none.
const DefaultTimeout = 10 * time.Second

// HashingAlgorithm is the broker's name for the scheme PasswordHash implements.
const HashingAlgorithm = "rabbit_password_hashing_sha256"

// Client talks to one broker's management API with one administrator account.
type Client struct {
	base    url.URL // scheme, host and path prefix; never credentials
	user    string
	pass    string
	timeout time.Duration
	http    *http.Client
}

// New parses rawURL (http[s]://user:password@host:port[/prefix]) and builds a client;
// nothing is contacted. Its errors never contain the URL, which carries a password.
func New(rawURL string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// The parser's reason may quote part of the URL, which carries a password.
		return nil, errors.New("not a valid URL (percent-encode special characters in the password)")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme must be http or https, got %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("URL has no host")
	case u.User == nil || u.User.Username() == "":
		return nil, errors.New("URL must carry the management user: http://user:password@host:15672")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("URL must not have a query or fragment")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	pass, _ := u.User.Password()
	c := &Client{
		base:    url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")},
		user:    u.User.Username(),
		pass:    pass,
		timeout: timeout,
		// No redirects: following one would send the credentials wherever it points.
		http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	return c, nil
}

// StatusError is an answer with an unexpected HTTP status.
type StatusError struct {
	Method, Path string
	Status       int
	// Reason is the broker's "reason" (or the start of its answer), for the log.
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("rabbitmq management %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Reason)
}

// IsStatus reports whether err is a StatusError with that status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// Permissions are a user's three regular expressions on one virtual host. Each is
// matched against the name of the exchange or queue an operation touches.
type Permissions struct {
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

// PasswordHash hashes password the way the broker's rabbit_password_hashing_sha256
// does (base64 of a 4-byte random salt followed by SHA-256(salt ‖ password)), so the
// plain password never leaves this process.
func PasswordHash(password string) string {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt) // never fails: crypto/rand aborts the process instead
	sum := sha256.Sum256(append(append([]byte{}, salt...), password...))
	return base64.StdEncoding.EncodeToString(append(salt, sum[:]...))
}

// PutUser creates the user, or replaces the password of an existing one, without tags
// (no management access). The password travels hashed. Connections the user has open
// stay open: see CloseConnections.
func (c *Client) PutUser(ctx context.Context, name, password string) error {
	body := map[string]string{
		"password_hash":     PasswordHash(password),
		"hashing_algorithm": HashingAlgorithm,
		"tags":              "",
	}
	return c.do(ctx, request{method: http.MethodPut, path: []string{"users", name}, body: body})
}

// DeleteUser deletes the user; the broker closes its connections. A missing user is
// not an error, so a retry is safe.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	err := c.do(ctx, request{method: http.MethodDelete, path: []string{"users", name}})
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// UserExists reports whether the user exists.
func (c *Client) UserExists(ctx context.Context, name string) (bool, error) {
	err := c.do(ctx, request{method: http.MethodGet, path: []string{"users", name}})
	if IsStatus(err, http.StatusNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SetPermissions replaces the user's permissions on vhost.
func (c *Client) SetPermissions(ctx context.Context, vhost, user string, p Permissions) error {
	return c.do(ctx, request{method: http.MethodPut, path: []string{"permissions", vhost, user}, body: p})
}

// VHostUsers lists the users that have permissions on vhost.
func (c *Client) VHostUsers(ctx context.Context, vhost string) ([]string, error) {
	var perms []struct {
		User string `json:"user"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: []string{"vhosts", vhost, "permissions"}, out: &perms}); err != nil {
		return nil, err
	}
	users := make([]string, len(perms))
	for i, p := range perms {
		users[i] = p.User
	}
	return users, nil
}

// CloseConnections closes every connection the user has open (a password change does
// not), with reason shown to the client.
func (c *Client) CloseConnections(ctx context.Context, user, reason string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: []string{"connections", "username", user}, reason: reason})
}

// Policy is a RabbitMQ policy: Definition (e.g. max-length, overflow) applies to the
// queues whose names match Pattern; of several matching policies only the one with the
// highest Priority applies.
type Policy struct {
	Pattern    string         `json:"pattern"`
	Definition map[string]any `json:"definition"`
	Priority   int            `json:"priority"`
	ApplyTo    string         `json:"apply-to"`
}

// PutPolicy creates or replaces the policy name on vhost; the broker applies it to
// existing and future matching queues without redeclaring them.
func (c *Client) PutPolicy(ctx context.Context, vhost, name string, p Policy) error {
	return c.do(ctx, request{method: http.MethodPut, path: []string{"policies", vhost, name}, body: p})
}

// DeletePolicy deletes the policy; a missing one is not an error.
func (c *Client) DeletePolicy(ctx context.Context, vhost, name string) error {
	err := c.do(ctx, request{method: http.MethodDelete, path: []string{"policies", vhost, name}})
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// QueueInfo is what the management API says of one queue.
type QueueInfo struct {
	Policy   string `json:"policy"`
	Messages int    `json:"messages"`
	// Type is the queue type: "quorum", "classic" or "stream".
	Type string `json:"type"`
	// Arguments are the x-arguments it was declared with.
	Arguments map[string]any `json:"arguments"`
	// Leader and Members are a quorum queue's nodes: the Raft leader and every replica.
	Leader  string   `json:"leader"`
	Members []string `json:"members"`
}

// Queue describes the queue (its statistics lag the broker by up to a few seconds).
func (c *Client) Queue(ctx context.Context, vhost, name string) (QueueInfo, error) {
	var q QueueInfo
	err := c.do(ctx, request{method: http.MethodGet, path: []string{"queues", vhost, name}, out: &q})
	return q, err
}

// request is one management call: path are the segments after /api, each escaped on
// its own (a vhost named "/" is %2F); body is sent as JSON; a 2xx answer is decoded
// into out when set; reason becomes X-Reason (shown to clients whose connection closes).
type request struct {
	method string
	path   []string
	body   any
	out    any
	reason string
}

const (
	maxErrorExcerpt = 200
	maxAnswer       = 64 << 20 // a vhost's permissions list with many thousand tenants
)

// do sends r and checks the answer.
func (c *Client) do(ctx context.Context, r request) error {
	u := c.base
	raw, path := u.Path+"/api", u.Path+"/api"
	for _, s := range r.path {
		raw += "/" + url.PathEscape(s)
		path += "/" + s
	}
	u.Path, u.RawPath = path, raw
	// The path names users and vhosts, never secrets, so errors may carry it.
	method, where := r.method, raw
	var rd io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("rabbitmq management %s %s: encode body: %w", method, where, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("rabbitmq management %s %s: %w", method, where, err)
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.reason != "" {
		req.Header.Set("X-Reason", r.reason)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("rabbitmq management %s %s: %w", method, where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &StatusError{Method: method, Path: where, Status: resp.StatusCode, Reason: reasonOf(excerpt)}
	}
	if r.out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(r.out); err != nil {
		return fmt.Errorf("rabbitmq management %s %s: decode answer: %w", method, where, err)
	}
	return nil
}

// reasonOf picks the broker's {"error","reason"} reason, else the start of the answer,
// on one line.
func reasonOf(body []byte) string {
	var e struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	s := string(body)
	if json.Unmarshal(body, &e) == nil && (e.Reason != "" || e.Error != "") {
		s = strings.TrimSpace(e.Error + " " + e.Reason)
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorExcerpt {
		s = s[:maxErrorExcerpt] + "…"
	}
	return s
}
