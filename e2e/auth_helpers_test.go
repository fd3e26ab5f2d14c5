//go:build integration

package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// craftToken builds a JWT by hand, so the test can send what platform/auth.Mint refuses
// to make: alg none, another algorithm, no exp, an exp in the past, another key. With a
// nil newHash the signature part is empty (alg none).
func craftToken(t *testing.T, header, claims map[string]any, newHash func() hash.Hash, key []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	if newHash == nil {
		return input + "."
	}
	mac := hmac.New(newHash, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// badTokens are admin tokens that must all be refused; the value is the detail the 401
// names. Each would grant everything if it were accepted.
func badTokens(t *testing.T, secret string) map[string]struct{ token, detail string } {
	t.Helper()
	now := time.Now()
	admin := func(exp *time.Time) map[string]any {
		c := map[string]any{"role": "admin", "sub": "attacker", "iat": now.Unix()}
		if exp != nil {
			c["exp"] = exp.Unix()
		}
		return c
	}
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	return map[string]struct{ token, detail string }{
		"expired":         {craftToken(t, hs256, admin(&past), sha256.New, []byte(secret)), "token is expired"},
		"wrong signature": {craftToken(t, hs256, admin(&future), sha256.New, []byte(secret+"-not")), "token signature is invalid"},
		"alg none":        {craftToken(t, map[string]any{"alg": "none", "typ": "JWT"}, admin(&future), nil, nil), "token algorithm is not HS256"},
		"HS512":           {craftToken(t, map[string]any{"alg": "HS512", "typ": "JWT"}, admin(&future), sha512.New, []byte(secret)), "token algorithm is not HS256"},
		"no exp":          {craftToken(t, hs256, admin(nil), sha256.New, []byte(secret)), "token has no exp claim"},
	}
}

// randHex is a short random suffix, so names checked for leaks are unique to this run.
func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// reply is one HTTP exchange as the matrix sees it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request; token "" sends no Authorization header.
func call(t *testing.T, method, url, token, body string) reply {
	t.Helper()
	return callWith(t, method, url, token, body, nil)
}

// callWith is call with extra request headers.
func callWith(t *testing.T, method, url, token, body string, h http.Header) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient(t).Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// problem decodes a problem+json body into a map, checking the media type.
func problem(t *testing.T, r reply) map[string]any {
	t.Helper()
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), "body: %s", r.body)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	require.EqualValues(t, r.status, m["status"], "body status matches the response status")
	return m
}

// withoutInstance is a problem body minus instance, which echoes the request URI the
// caller itself sent (so it can differ between two otherwise identical answers).
func withoutInstance(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "instance" {
			out[k] = v
		}
	}
	return out
}

// page is a list body of the query service.
type page struct {
	Data []struct {
		ID       string `json:"id"`
		TenantID string `json:"tenant_id"`
	} `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func decodePage(t *testing.T, r reply) page {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var p page
	require.NoError(t, json.Unmarshal(r.body, &p), "body: %s", r.body)
	return p
}
