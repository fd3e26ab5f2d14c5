// Command http-producer publishes JSON messages through the command service's
// POST /tenants/{id}/messages. Every message carries an Idempotency-Key, so a retry —
// after a timeout, a 503, a lost connection — is stored once; 429 and 503 are retried
// after the Retry-After the service sent.
//
//	http-producer -tenant $T -command-url http://localhost:8080 -token "$MTM_TOKEN" -n 10
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"time"
)

type config struct {
	commandURL string
	tenant     string
	token      string
	n          int
	keyPrefix  string
	attempts   int
	timeout    time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.commandURL, "command-url", env("COMMAND_URL", "http://localhost:8080"), "command service (env COMMAND_URL)")
	flag.StringVar(&cfg.tenant, "tenant", os.Getenv("TENANT_ID"), "tenant id (env TENANT_ID)")
	flag.StringVar(&cfg.token, "token", os.Getenv("MTM_TOKEN"), "bearer token, admin or the tenant's (env MTM_TOKEN; none when JWT_SECRET is unset)")
	flag.IntVar(&cfg.n, "n", 10, "messages to publish")
	flag.StringVar(&cfg.keyPrefix, "key-prefix", "http-producer-"+strconv.FormatInt(time.Now().Unix(), 10), "Idempotency-Key prefix: message i is <prefix>-<i>; run again with the same prefix and nothing is stored twice")
	flag.IntVar(&cfg.attempts, "attempts", 10, "tries per message before giving up")
	flag.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "bound on the whole run")
	flag.Parse()
	if cfg.tenant == "" {
		fmt.Fprintln(os.Stderr, "http-producer: -tenant (or TENANT_ID) is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	p := &producer{cfg: cfg, client: &http.Client{Timeout: 10 * time.Second}, sleep: sleep}
	for i := range cfg.n {
		body, err := json.Marshal(map[string]any{"seq": i, "source": "http-producer"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "http-producer:", err)
			os.Exit(1)
		}
		id, err := p.publish(ctx, fmt.Sprintf("%s-%d", cfg.keyPrefix, i), body)
		if err != nil {
			fmt.Fprintln(os.Stderr, "http-producer:", err)
			os.Exit(1)
		}
		fmt.Println(id)
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type producer struct {
	cfg    config
	client *http.Client
	// sleep waits d or until ctx ends (tests replace it).
	sleep func(ctx context.Context, d time.Duration) error
}

// errPermanent is an answer a retry cannot change (400, 404, 409, 413, 415, 422).
var errPermanent = errors.New("refused")

// publish sends body under key until the service accepted it (202) and returns the
// stored message's id. The same key always names the same message, so retrying is safe
// whatever happened to the previous try.
func (p *producer) publish(ctx context.Context, key string, body []byte) (string, error) {
	var last error
	for attempt := 1; attempt <= p.cfg.attempts; attempt++ {
		id, wait, err := p.try(ctx, key, body)
		if err == nil {
			return id, nil
		}
		if errors.Is(err, errPermanent) {
			return "", err
		}
		last = err
		if wait <= 0 {
			// No Retry-After (a network error): back off exponentially, up to 5 s.
			wait = min(time.Duration(1<<(attempt-1))*100*time.Millisecond, 5*time.Second)
		}
		if err := p.sleep(ctx, wait); err != nil {
			return "", fmt.Errorf("message %s: %w (last: %w)", key, err, last)
		}
	}
	return "", fmt.Errorf("message %s: gave up after %d attempts: %w", key, p.cfg.attempts, last)
}

// try makes one request: the message id on 202, else how long the service asked to
// wait (0: it did not say) and why it failed.
func (p *producer) try(ctx context.Context, key string, body []byte) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.commandURL+"/tenants/"+p.cfg.tenant+"/messages", bytes.NewReader(body))
	if err != nil {
		return "", 0, fmt.Errorf("%w: build request: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if p.cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusAccepted:
		var accepted struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &accepted); err != nil {
			return "", 0, fmt.Errorf("decode answer: %w", err)
		}
		return accepted.ID, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode >= 500:
		// 429: over the tenant's rate, nothing published. 503: the broker is away, or
		// the confirm did not arrive (the message may be stored: the same key keeps it once).
		return "", retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%s: %s", resp.Status, problemDetail(raw))
	default:
		return "", 0, fmt.Errorf("%w: %s: %s", errPermanent, resp.Status, problemDetail(raw))
	}
}

// retryAfter reads a Retry-After in seconds (the form the service sends); 0 when absent.
func retryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(v)
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// problemDetail is the detail of a problem+json answer, else the raw body.
func problemDetail(raw []byte) string {
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(raw, &p) == nil && p.Detail != "" {
		return p.Code + ": " + p.Detail
	}
	return string(raw)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to retry: %w", ctx.Err())
	}
}
