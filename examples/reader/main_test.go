package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The reader follows next_cursor, passing it back untouched, until it is null.
func TestWalkFollowsCursorToTheEnd(t *testing.T) {
	pages := map[string]string{
		"":      `{"data":[{"id":"a","created_at":"2026-01-01T00:00:00Z","payload":{"n":1}},{"id":"b","created_at":"2026-01-01T00:00:01Z","payload":{"n":2}}],"next_cursor":"c/1+="}`,
		"c/1+=": `{"data":[{"id":"c","created_at":"2026-01-01T00:00:02Z","payload":{"n":3}}],"next_cursor":null}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Query().Get("cursor")]
		if !ok || r.URL.Path != "/tenants/t1/messages" || r.URL.Query().Get("limit") != "2" || r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	var out bytes.Buffer
	n, err := walk(context.Background(), srv.Client(), config{queryURL: srv.URL, tenant: "t1", token: "tok", limit: 2}, &out)
	if err != nil || n != 3 {
		t.Fatalf("walk = %d, %v", n, err)
	}
	var lines []string
	for sc := bufio.NewScanner(&out); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 3 || lines[2] != `{"id":"c","created_at":"2026-01-01T00:00:02Z","payload":{"n":3}}` {
		t.Fatalf("output: %q", lines)
	}
}
