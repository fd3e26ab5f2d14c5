package auth_test

import (
	"bytes"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/platform/auth"
	"github.com/multitenant/mtm/platform/config"
)

func TestMintVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	cfg := auth.Config{Secret: testSecret, Issuer: testIssuer, Audience: testAudience}
	id := uuid.New()

	tok, err := auth.Mint(cfg, auth.RoleTenant, strings.ToUpper(id.String()), time.Hour)
	require.NoError(t, err)
	p, err := auth.Verify(cfg, tok)
	require.NoError(t, err)
	assert.Equal(t, auth.Principal{Role: auth.RoleTenant, TenantID: id.String(), Subject: "tenant:" + id.String()}, p)

	// The minted token carries exactly what the issue asks for.
	var c auth.Claims
	_, _, err = jwt.NewParser().ParseUnverified(tok, &c)
	require.NoError(t, err)
	assert.Equal(t, testIssuer, c.Issuer)
	assert.Equal(t, jwt.ClaimStrings{testAudience}, c.Audience)
	require.NotNil(t, c.ExpiresAt)
	assert.WithinDuration(t, time.Now().Add(time.Hour), c.ExpiresAt.Time, time.Minute)

	admin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Minute)
	require.NoError(t, err)
	p, err = auth.Verify(cfg, admin)
	require.NoError(t, err)
	assert.True(t, p.IsAdmin())
	assert.Empty(t, p.TenantID)

	// A token minted for one issuer/audience does not verify under another.
	_, err = auth.Verify(auth.Config{Secret: testSecret, Issuer: "other"}, admin)
	assert.ErrorIs(t, err, auth.ErrIssuer)
	_, err = auth.Verify(auth.Config{Secret: testSecret, Audience: "other"}, admin)
	assert.ErrorIs(t, err, auth.ErrAudience)
	_, err = auth.Verify(auth.Config{Secret: "other-secret"}, admin)
	assert.ErrorIs(t, err, auth.ErrSignature)
}

func TestMintRejects(t *testing.T) {
	t.Parallel()
	cfg := auth.Config{Secret: testSecret}
	_, err := auth.Mint(auth.Config{}, auth.RoleAdmin, "", time.Hour)
	assert.ErrorIs(t, err, auth.ErrSecretNotSet)
	_, err = auth.Mint(cfg, "root", "", time.Hour)
	assert.ErrorIs(t, err, auth.ErrMintRole)
	_, err = auth.Mint(cfg, auth.RoleTenant, "", time.Hour)
	assert.ErrorIs(t, err, auth.ErrMintTenantID)
	_, err = auth.Mint(cfg, auth.RoleTenant, "acme", time.Hour)
	assert.ErrorIs(t, err, auth.ErrMintTenantID)
	_, err = auth.Mint(cfg, auth.RoleTenant, uuid.Nil.String(), time.Hour)
	assert.ErrorIs(t, err, auth.ErrMintTenantID, "the nil UUID names no tenant")
	_, err = auth.Mint(cfg, auth.RoleAdmin, "", 0)
	assert.ErrorIs(t, err, auth.ErrMintTTL)
	_, err = auth.Mint(auth.Config{Secret: testSecret, MaxTTL: time.Hour}, auth.RoleAdmin, "", 2*time.Hour)
	assert.ErrorIs(t, err, auth.ErrMintTTL)
}

func TestVerifyWithoutSecret(t *testing.T) {
	t.Parallel()
	tok, err := auth.Mint(auth.Config{Secret: testSecret}, auth.RoleAdmin, "", time.Hour)
	require.NoError(t, err)
	// Verify never accepts anything without a key; turning auth off is Middleware's job.
	_, err = auth.Verify(auth.Config{}, tok)
	assert.ErrorIs(t, err, auth.ErrSecretNotSet)
	_, err = auth.Verify(auth.Config{Secret: testSecret}, "")
	assert.ErrorIs(t, err, auth.ErrNoToken)
}

func TestLeewayToleratesSkew(t *testing.T) {
	t.Parallel()
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"role": "admin", "exp": time.Now().Add(-10 * time.Second).Unix()})
	_, err := auth.Verify(auth.Config{Secret: testSecret}, tok)
	assert.ErrorIs(t, err, auth.ErrExpired)
	_, err = auth.Verify(auth.Config{Secret: testSecret, Leeway: time.Minute}, tok)
	assert.NoError(t, err)
}

func TestPrincipal(t *testing.T) {
	t.Parallel()
	a, b := uuid.NewString(), uuid.NewString()
	admin := auth.Principal{Role: auth.RoleAdmin}
	tenant := auth.Principal{Role: auth.RoleTenant, TenantID: a}
	var nobody auth.Principal

	for _, id := range []string{a, b, "not-a-uuid"} {
		assert.True(t, admin.CanAccessTenant(id), id)
		assert.False(t, nobody.CanAccessTenant(id), id)
	}
	assert.True(t, tenant.CanAccessTenant(a))
	assert.True(t, tenant.CanAccessTenant(strings.ToUpper(a)))
	assert.False(t, tenant.CanAccessTenant(b))
	assert.False(t, tenant.CanAccessTenant(""))
	assert.False(t, tenant.CanAccessTenant("not-a-uuid"))

	_, scoped := admin.TenantScope()
	assert.False(t, scoped)
	id, scoped := tenant.TenantScope()
	assert.True(t, scoped)
	assert.Equal(t, a, id)
	id, scoped = nobody.TenantScope()
	assert.True(t, scoped)
	assert.Empty(t, id)
}

func TestConfigFrom(t *testing.T) {
	t.Parallel()
	cfg := auth.ConfigFrom(&config.Base{JWTSecret: "s", JWTIssuer: "i", JWTAudience: "a"})
	assert.Equal(t, auth.Config{Secret: "s", Issuer: "i", Audience: "a"}, cfg)
	assert.True(t, cfg.Enabled())
	assert.False(t, auth.ConfigFrom(&config.Base{}).Enabled())
}

// parseTokenFlags registers the token flags on a fresh flag set, as main does on
// flag.CommandLine, and parses args.
func parseTokenFlags(t *testing.T, args ...string) (*auth.TokenFlags, error) {
	t.Helper()
	fs := flag.NewFlagSet("command", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := auth.RegisterTokenFlags(fs)
	return f, fs.Parse(args)
}

func TestTokenFlags(t *testing.T) {
	t.Parallel()
	cfg := auth.Config{Secret: testSecret, Issuer: testIssuer, Audience: testAudience, MaxTTL: 24 * time.Hour}
	id := uuid.NewString()

	cases := []struct {
		name    string
		args    []string
		want    auth.Principal
		wantErr string
		ttl     time.Duration
	}{
		{name: "admin default", args: []string{"-token"}, want: auth.Principal{Role: auth.RoleAdmin, Subject: "admin"}, ttl: time.Hour},
		{name: "admin explicit", args: []string{"-token", "-role", "admin", "-ttl", "5m"}, want: auth.Principal{Role: auth.RoleAdmin, Subject: "admin"}, ttl: 5 * time.Minute},
		{name: "tenant", args: []string{"-token", "-role", "tenant", "-tenant", id, "-ttl", "1h"}, want: auth.Principal{Role: auth.RoleTenant, TenantID: id, Subject: "tenant:" + id}, ttl: time.Hour},
		{name: "tenant without id", args: []string{"-role", "tenant"}, wantErr: "-tenant:"},
		{name: "tenant bad id", args: []string{"-role", "tenant", "-tenant", "acme"}, wantErr: "-tenant:"},
		{name: "admin with tenant", args: []string{"-role", "admin", "-tenant", id}, wantErr: "-tenant:"},
		{name: "unknown role", args: []string{"-role", "root"}, wantErr: "-role:"},
		{name: "zero ttl", args: []string{"-ttl", "0s"}, wantErr: "-ttl:"},
		{name: "ttl beyond JWT_MAX_TTL", args: []string{"-ttl", "876000h"}, wantErr: "-ttl:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := parseTokenFlags(t, tc.args...)
			require.NoError(t, err)
			assert.Equal(t, slices.Contains(tc.args, "-token"), f.Requested())
			var out bytes.Buffer
			err = f.Print(cfg, &out)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Empty(t, out.String(), "nothing printed on error")
				return
			}
			require.NoError(t, err)
			line := out.String()
			require.True(t, strings.HasSuffix(line, "\n"))
			tok := strings.TrimSuffix(line, "\n")
			p, err := auth.Verify(cfg, tok)
			require.NoError(t, err)
			assert.Equal(t, tc.want, p)
			var c auth.Claims
			_, _, err = jwt.NewParser().ParseUnverified(tok, &c)
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now().Add(tc.ttl), c.ExpiresAt.Time, time.Minute)
		})
	}

	// Malformed flags fail the parse (main's flag.Parse exits with usage on them).
	for _, args := range [][]string{{"-ttl", "soon"}, {"-nope"}} {
		_, err := parseTokenFlags(t, args...)
		require.Error(t, err, "%q", args)
		assert.Contains(t, err.Error(), args[0], "%q", args)
	}

	f, err := parseTokenFlags(t, "-token")
	require.NoError(t, err)
	err = f.Print(auth.Config{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "JWT_SECRET")
}

func TestParseTenantID(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	for _, raw := range []string{id.String(), strings.ToUpper(id.String())} {
		got, err := auth.ParseTenantID(raw)
		require.NoError(t, err, raw)
		assert.Equal(t, id, got, raw)
	}
	hex := strings.ReplaceAll(id.String(), "-", "")
	for _, raw := range []string{"", "not-a-uuid", id.String()[:35], id.String() + "0",
		"{" + id.String() + "}", "urn:uuid:" + id.String(), hex,
		strings.Replace(id.String(), "-", "x", 1), "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", uuid.Nil.String()} {
		_, err := auth.ParseTenantID(raw)
		assert.ErrorIs(t, err, auth.ErrNotTenantID, "%q", raw)
		// A tenant principal never matches an id in a form the services refuse.
		assert.False(t, auth.Principal{Role: auth.RoleTenant, TenantID: id.String()}.CanAccessTenant(raw), "%q", raw)
	}
}
