package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/multitenant/mtm/platform/auth"
)

// FuzzVerify feeds Verify arbitrary tokens, seeded with tokens it accepts and near
// misses. Verify must never panic, and it may accept only the exact tokens minted with
// the secret: a signed token has one spelling, so an edit anywhere (including the
// signature's unused trailing bits or inserted line breaks, which a lenient base64
// decoder ignores) is refused, as is every forgery the fuzzer makes.
func FuzzVerify(f *testing.F) {
	cfg := auth.Config{Secret: testSecret, Issuer: testIssuer, Audience: testAudience, MaxTTL: 24 * time.Hour}
	admin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	tenant, err := auth.Mint(cfg, auth.RoleTenant, "0190f2a4-7b7e-7c3a-9d4e-1a2b3c4d5e6f", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	minted := map[string]bool{admin: true, tenant: true}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"role": "admin", "exp": time.Now().Add(time.Hour).Unix()})
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		admin, tenant, noneTok, admin + "=", admin[:len(admin)-1], flipLastBit(admin),
		admin[:len(admin)-5] + "\n" + admin[len(admin)-5:], strings.Replace(admin, ".", "..", 1),
		"", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "....",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := auth.Verify(cfg, raw)
		if err == nil && !minted[raw] {
			t.Fatalf("accepted a token never minted: %q (%+v)", raw, p)
		}
	})
}

// flipLastBit changes the lowest bit of the token's last base64url character: for a
// 32-byte HS256 signature that bit is padding, which a lenient decoder ignores.
func flipLastBit(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i^1])
}
