package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The producer retries 429 and 503 after the Retry-After they carry, with the same
// Idempotency-Key every time, and stops at once on a refusal.
func TestPublishRetriesHonouringRetryAfter(t *testing.T) {
	var keys []string
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"id":"m-1"}`))
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tenants/t1/messages" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		answers[len(keys)-1](w)
	}))
	defer srv.Close()
	var waits []time.Duration
	p := &producer{cfg: config{commandURL: srv.URL, tenant: "t1", attempts: 5}, client: srv.Client(),
		sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	id, err := p.publish(context.Background(), "k-1", []byte(`{}`))
	if err != nil || id != "m-1" {
		t.Fatalf("publish = %q, %v", id, err)
	}
	if len(keys) != 3 || keys[0] != "k-1" || keys[1] != "k-1" || keys[2] != "k-1" {
		t.Fatalf("keys sent: %v", keys)
	}
	if len(waits) != 2 || waits[0] != 3*time.Second || waits[1] != time.Second {
		t.Fatalf("waits: %v", waits)
	}

	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}))
	defer refused.Close()
	p.cfg.commandURL = refused.URL
	if _, err := p.publish(context.Background(), "k-2", []byte(`[]`)); !errors.Is(err, errPermanent) {
		t.Fatalf("422 should not be retried: %v", err)
	}
}
