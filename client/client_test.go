package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRequestsCarryTokenIfMatchAndCorrelation(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		body = make([]byte, r.ContentLength)
		_, _ = r.Body.Read(body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"t1","status":"draining","version":4}`))
	}))
	defer srv.Close()
	c := New(srv.URL+"/", srv.URL, "tok").WithCorrelationID("corr-1")

	out, err := c.Delete(context.Background(), "t1", DeleteOptions{Drain: true, DrainTimeout: 90 * time.Second, IfMatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != StatusDraining || out.Version != 4 {
		t.Fatalf("answer %+v", out)
	}
	if got.Method != http.MethodDelete || got.URL.Path != "/tenants/t1" || got.URL.Query().Get("drain") != "true" || got.URL.Query().Get("drain_timeout") != "1m30s" {
		t.Fatalf("request %s %s", got.Method, got.URL)
	}
	if got.Header.Get("Authorization") != "Bearer tok" || got.Header.Get("If-Match") != `"3"` || got.Header.Get("X-Correlation-ID") != "corr-1" {
		t.Fatalf("headers %v", got.Header)
	}

	if _, err := c.WithToken("").Redrive(context.Background(), "t1", Selector{Reason: "invalid_json", Max: 5, DryRun: true}, 0); err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("Authorization") != "" || got.Header.Get("If-Match") != "" {
		t.Fatalf("headers %v", got.Header)
	}
	var sel map[string]any
	if err := json.Unmarshal(body, &sel); err != nil || sel["reason"] != "invalid_json" || sel["max"] != 5.0 || sel["dry_run"] != true || sel["ids"] != nil {
		t.Fatalf("selector body %s (%v)", body, err)
	}
}

func TestErrorsAreProblems(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/tenants/missing":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"x","title":"Not Found","status":404,"detail":"no tenant with this id","code":"tenant_not_found"}`))
		case "/tenants":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"status":422,"detail":"invalid fields","code":"validation_failed","errors":[{"field":"workers","detail":"must be an integer between 1 and 64"}]}`))
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		}
	}))
	defer srv.Close()
	c := New(srv.URL, srv.URL, "")

	_, err := c.GetTenant(context.Background(), "missing")
	var p *Problem
	if !errors.As(err, &p) || p.Status != 404 || p.Code != "tenant_not_found" || err.Error() != "no tenant with this id" {
		t.Fatalf("err = %#v", err)
	}
	if !IsStatus(err, 404) || !IsCode(err, "tenant_not_found") || IsCode(err, "other") {
		t.Fatal("IsStatus/IsCode")
	}
	_, err = c.CreateTenant(context.Background(), "acme", 999)
	if err == nil || err.Error() != "invalid fields; workers: must be an integer between 1 and 64" {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Events(context.Background(), "x", "", 0)
	if !IsStatus(err, 502) || err.Error() != "<html>bad gateway</html>" {
		t.Fatalf("err = %v", err)
	}
}

// Each service's readiness is asked on its own base URL, so a caller can name the one
// that is down; Ready needs both.
func TestReadinessPerService(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"not ready"}`))
	}))
	defer down.Close()
	ctx := context.Background()

	c := New(up.URL, down.URL, "")
	if err := c.CommandReady(ctx); err != nil {
		t.Fatalf("command: %v", err)
	}
	if err := c.QueryReady(ctx); !IsStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("query: want 503, got %v", err)
	}
	if err := c.Ready(ctx); err == nil {
		t.Fatal("Ready with the query service down: want an error")
	}
	if err := New(down.URL, up.URL, "").CommandReady(ctx); err == nil {
		t.Fatal("command down: want an error")
	}
	if err := New(up.URL, up.URL, "").Ready(ctx); err != nil {
		t.Fatal(err)
	}
}
