package rabbitadmin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewRefusesBadURLsWithoutEchoingThem(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"amqp://admin:s3cret@host:15672",
		"http://admin:s3cret@",
		"http://host:15672",
		"http://:s3cret@host:15672",
		"http://admin:s3cret@host:15672/?x=1",
		"http://admin:s3cret@host:15672/#f",
		"http://admin:s3cret@host:15672/%zz",
		"http://admin:s3cret@ho st:15672",
		"http://admin:s3cret/x@host:15672", // an unescaped "/" ends the host inside the password
	} {
		_, err := New(raw, 0)
		require.Error(t, err, raw)
		assert.NotContains(t, err.Error(), "s3cret", raw)
	}
	c, err := New("https://admin:s3cret@host:15672/rabbit/", 0)
	require.NoError(t, err)
	assert.Equal(t, "https://host:15672/rabbit", c.base.String(), "credentials are kept apart from the URL")
	assert.Equal(t, DefaultTimeout, c.timeout)
}

// The broker's rabbit_password_hashing_sha256: base64(salt ‖ SHA-256(salt ‖ password)).
func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h := PasswordHash("pw")
	raw, err := base64.StdEncoding.DecodeString(h)
	require.NoError(t, err)
	require.Len(t, raw, 4+sha256.Size)
	sum := sha256.Sum256(append(append([]byte{}, raw[:4]...), "pw"...))
	assert.Equal(t, sum[:], raw[4:])
	assert.NotEqual(t, h, PasswordHash("pw"), "salted")
}

func TestRequestsAndErrors(t *testing.T) {
	t.Parallel()
	var got struct {
		method, rawPath, auth, reason, body string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.rawPath, got.reason, got.body = r.Method, r.URL.EscapedPath(), r.Header.Get("X-Reason"), string(b)
		u, p, _ := r.BasicAuth()
		got.auth = u + ":" + p
		switch {
		case strings.HasSuffix(r.URL.Path, "/missing"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"Object Not Found","reason":"Not Found"}`)
		case strings.HasSuffix(r.URL.Path, "/boom"):
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, strings.Repeat("x\n", 1000))
		case strings.HasSuffix(r.URL.Path, "/moved"):
			http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
		case r.URL.EscapedPath() == "/prefix/api/vhosts/%2F/permissions":
			_, _ = io.WriteString(w, `[{"user":"a","vhost":"/"},{"user":"b","vhost":"/"}]`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(strings.Replace(srv.URL, "http://", "http://adm:pw@", 1)+"/prefix", time.Second)
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, c.SetPermissions(ctx, "/", "tenant_x", Permissions{Configure: "^$", Write: "^q$", Read: "^$"}))
	assert.Equal(t, "PUT", got.method)
	assert.Equal(t, "/prefix/api/permissions/%2F/tenant_x", got.rawPath, `vhost "/" is one escaped segment`)
	assert.Equal(t, "adm:pw", got.auth)
	assert.JSONEq(t, `{"configure":"^$","write":"^q$","read":"^$"}`, got.body)

	require.NoError(t, c.PutUser(ctx, "tenant_x", "plain-password"))
	assert.NotContains(t, got.body, "plain-password", "only the hash travels")
	assert.Contains(t, got.body, `"hashing_algorithm":"rabbit_password_hashing_sha256"`)

	require.NoError(t, c.CloseConnections(ctx, "tenant_x", "rotated"))
	assert.Equal(t, "DELETE", got.method)
	assert.Equal(t, "/prefix/api/connections/username/tenant_x", got.rawPath)
	assert.Equal(t, "rotated", got.reason)

	users, err := c.VHostUsers(ctx, "/")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, users)

	require.NoError(t, c.DeleteUser(ctx, "missing"), "deleting a missing user succeeds")
	ok, err := c.UserExists(ctx, "missing")
	require.NoError(t, err)
	assert.False(t, ok)

	err = c.PutUser(ctx, "boom", "pw")
	require.True(t, IsStatus(err, http.StatusInternalServerError), "%v", err)
	assert.NotContains(t, err.Error(), "\n")
	assert.LessOrEqual(t, len(err.Error()), 400, "the answer is cut short")
	assert.NotContains(t, err.Error(), "pw@")

	err = c.DeleteUser(ctx, "moved")
	require.True(t, IsStatus(err, http.StatusFound), "redirects are not followed: %v", err)
}

func TestCallsAreBounded(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	c, err := New(strings.Replace(srv.URL, "http://", "http://adm:pw@", 1), 200*time.Millisecond)
	require.NoError(t, err)
	start := time.Now()
	err = c.DeleteUser(context.Background(), "u")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.NotContains(t, err.Error(), "pw")
}
