// Command reader prints every stored message of a tenant, oldest first, one JSON object
// a line, walking the query service's pages with their opaque next_cursor until it is
// null. Pages are keyset queries, so the last page costs what the first does.
//
//	reader -tenant $T -query-url http://localhost:8081 -token "$MTM_TOKEN"
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"time"
)

type config struct {
	queryURL string
	tenant   string
	token    string
	limit    int
	timeout  time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.queryURL, "query-url", env("QUERY_URL", "http://localhost:8081"), "query service (env QUERY_URL)")
	flag.StringVar(&cfg.tenant, "tenant", os.Getenv("TENANT_ID"), "tenant id (env TENANT_ID)")
	flag.StringVar(&cfg.token, "token", os.Getenv("MTM_TOKEN"), "bearer token, admin or the tenant's (env MTM_TOKEN; none when JWT_SECRET is unset)")
	flag.IntVar(&cfg.limit, "limit", 100, "messages per page (1..100)")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "bound on the whole walk")
	flag.Parse()
	if cfg.tenant == "" {
		fmt.Fprintln(os.Stderr, "reader: -tenant (or TENANT_ID) is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	n, err := walk(ctx, &http.Client{Timeout: 30 * time.Second}, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "reader: %d messages\n", n)
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// page is one answer of GET /tenants/{id}/messages.
type page struct {
	Data []struct {
		ID        string          `json:"id"`
		CreatedAt time.Time       `json:"created_at"`
		Payload   json.RawMessage `json:"payload"`
	} `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// walk writes every message to out and returns how many there were.
func walk(ctx context.Context, client *http.Client, cfg config, out io.Writer) (int, error) {
	n := 0
	cursor := ""
	enc := json.NewEncoder(out)
	for {
		q := url.Values{"limit": {strconv.Itoa(cfg.limit)}}
		if cursor != "" {
			// Opaque and signed: pass it back exactly as received.
			q.Set("cursor", cursor)
		}
		p, err := get(ctx, client, cfg, cfg.queryURL+"/tenants/"+url.PathEscape(cfg.tenant)+"/messages?"+q.Encode())
		if err != nil {
			return n, err
		}
		for _, m := range p.Data {
			if err := enc.Encode(m); err != nil {
				return n, fmt.Errorf("write message: %w", err)
			}
			n++
		}
		if p.NextCursor == nil {
			return n, nil
		}
		cursor = *p.NextCursor
	}
}

func get(ctx context.Context, client *http.Client, cfg config, u string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get page: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get page: %s: %s", resp.Status, raw)
	}
	var p page
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("decode page: %w", err)
	}
	return &p, nil
}
