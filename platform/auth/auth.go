package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/multitenant/mtm/platform/config"
)

// Role is the value of the token's role claim.
type Role string

const (
	// RoleAdmin may manage every tenant and read everything.
	RoleAdmin Role = "admin"
	// RoleTenant may publish to and read only its own tenant.
	RoleTenant Role = "tenant"
)

// Config holds the verification settings. An empty Secret turns authentication off.
type Config struct {
	Secret   string
	Issuer   string // checked when set; written by Mint when set
	Audience string // checked when set; written by Mint when set
	// Leeway tolerates clock skew on exp/nbf; zero means none.
	Leeway time.Duration
	// MaxTTL refuses tokens valid for longer than this from now (JWT_MAX_TTL); zero means
	// no bound.
	MaxTTL time.Duration
}

// IssuedAtSkew is how far in the future a token's iat may be (clock skew between the
// minting host and this one); a token "issued" later than that is refused.
const IssuedAtSkew = 30 * time.Second

// ConfigFrom takes the JWT settings of the shared service configuration.
func ConfigFrom(b *config.Base) Config {
	return Config{Secret: b.JWTSecret, Issuer: b.JWTIssuer, Audience: b.JWTAudience, MaxTTL: b.JWTMaxTTL}
}

// Enabled reports whether requests must carry a token.
func (c Config) Enabled() bool { return c.Secret != "" }

// Principal is who a request acts as.
type Principal struct {
	Role     Role
	TenantID string // canonical lower-case UUID, set only for RoleTenant
	Subject  string // the token's sub, for logs; may be empty
}

// IsAdmin reports whether p may do everything.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// CanAccessTenant reports whether p may publish to and read tenant id. Ids are
// compared as UUIDs, so letter case does not matter; anything ParseTenantID refuses
// never matches a tenant.
func (p Principal) CanAccessTenant(id string) bool {
	switch p.Role {
	case RoleAdmin:
		return true
	case RoleTenant:
		u, err := ParseTenantID(id)
		return err == nil && u.String() == p.TenantID
	default:
		return false
	}
}

// ErrNotTenantID is why ParseTenantID refuses a string.
var ErrNotTenantID = errors.New("tenant id is not a canonical UUID")

// ParseTenantID parses a tenant id as both services accept it in paths and query
// parameters: the canonical 36-character UUID form, in either letter case. uuid.Parse
// also takes {braces}, urn:uuid: and 32 bare hex digits; refusing them keeps one
// spelling per tenant in URLs, cursors and logs.
func ParseTenantID(raw string) (uuid.UUID, error) {
	if len(raw) != 36 {
		return uuid.Nil, ErrNotTenantID
	}
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: %w", ErrNotTenantID, err)
	}
	if id == uuid.Nil {
		// The nil UUID is never a tenant; code that took it for "no filter" would
		// hand its holder every tenant.
		return uuid.Nil, fmt.Errorf("%w: the nil UUID names no tenant", ErrNotTenantID)
	}
	return id, nil
}

// TenantScope returns the only tenant p may see, for filtering lists; ok is false
// for an admin, who sees everything. A principal with no role gets ("", true): it
// may see nothing, and filtering on the empty id returns nothing.
func (p Principal) TenantScope() (tenantID string, ok bool) {
	if p.IsAdmin() {
		return "", false
	}
	return p.TenantID, true
}

// Claims is the token body: the registered claims plus role and tenant_id.
type Claims struct {
	jwt.RegisteredClaims
	Role     Role   `json:"role"`
	TenantID string `json:"tenant_id,omitempty"`
}

// Reasons a token is rejected; Verify wraps one of them so callers (and the 401
// detail) can say why without echoing library text.
var (
	ErrNoToken      = errors.New("no bearer token")
	ErrMalformed    = errors.New("token is malformed")
	ErrAlgorithm    = errors.New("token algorithm is not HS256")
	ErrSignature    = errors.New("token signature is invalid")
	ErrExpired      = errors.New("token is expired")
	ErrMissingExp   = errors.New("token has no exp claim")
	ErrNotYetValid  = errors.New("token is not valid yet")
	ErrFutureIat    = errors.New("token is issued in the future")
	ErrLifetime     = errors.New("token lifetime exceeds JWT_MAX_TTL")
	ErrIssuer       = errors.New("token issuer is not accepted")
	ErrAudience     = errors.New("token audience is not accepted")
	ErrRole         = errors.New("token role is not admin or tenant")
	ErrTenantID     = errors.New("tenant token needs a UUID tenant_id claim")
	ErrInvalid      = errors.New("token is invalid")
	ErrSecretNotSet = errors.New("JWT_SECRET is not set")
	ErrMintRole     = errors.New("role must be admin or tenant")
	ErrMintTTL      = errors.New("ttl must be positive and at most JWT_MAX_TTL")
	ErrMintTenantID = errors.New("tenant role needs a UUID tenant id")
)

// Verify checks a raw token against cfg and returns its principal. Errors wrap one of
// the Err* reasons above.
func Verify(cfg Config, raw string) (Principal, error) {
	if !cfg.Enabled() {
		return Principal{}, ErrSecretNotSet
	}
	if raw == "" {
		return Principal{}, ErrNoToken
	}
	if !compactJWS(raw) {
		return Principal{}, ErrMalformed
	}
	opts := []jwt.ParserOption{
		// Pinning the method list is what stops alg=none and key-confusion tokens.
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		// A lenient decoder ignores the signature's unused trailing bits, so one signed
		// token would have several accepted spellings (a token denylist or log search
		// keyed on the string could be sidestepped).
		jwt.WithStrictDecoding(),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	var claims Claims
	_, err := jwt.NewParser(opts...).ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		// Checked again here so the key is never handed to another method even if the
		// parser options change.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, ErrAlgorithm
		}
		return []byte(cfg.Secret), nil
	})
	if err != nil {
		return Principal{}, classify(cfg, &claims, err)
	}
	if err := checkTimes(cfg, claims, time.Now()); err != nil {
		return Principal{}, err
	}
	return principalOf(claims)
}

// compactJWS reports whether raw uses only the characters of a JWS compact
// serialisation (base64url and dots). The base64 decoder skips CR and LF even in strict
// mode, so without this a line break inserted into the signature would still verify.
func compactJWS(raw string) bool {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// checkTimes bounds what the signature cannot: a token "issued" in the future and a
// token valid for longer than MaxTTL are refused (the secret's holder may mint either).
func checkTimes(cfg Config, c Claims, now time.Time) error {
	if c.IssuedAt != nil && c.IssuedAt.After(now.Add(IssuedAtSkew)) {
		return ErrFutureIat
	}
	if cfg.MaxTTL > 0 && c.ExpiresAt.Sub(now) > cfg.MaxTTL+IssuedAtSkew {
		return ErrLifetime
	}
	return nil
}

// classify maps jwt's errors to this package's reasons. Order matters: jwt reports an
// unlisted method as ErrTokenSignatureInvalid, so the algorithm check comes first.
func classify(cfg Config, claims *Claims, err error) error {
	switch {
	case errors.Is(err, ErrAlgorithm):
		return ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// alg missing or unknown to the library.
		return ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && !errors.Is(err, jwt.ErrSignatureInvalid):
		// The parser rejected the method before looking at the signature.
		return ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// jwt does not say which claim; the claims were decoded before validation.
		switch {
		case claims.ExpiresAt == nil:
			return ErrMissingExp
		case cfg.Issuer != "" && claims.Issuer == "":
			return ErrIssuer
		case cfg.Audience != "" && len(claims.Audience) == 0:
			return ErrAudience
		}
		return ErrInvalid
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		// A claim of the wrong JSON type (exp as a string) lands here.
		return ErrMalformed
	default:
		return ErrInvalid
	}
}

func principalOf(c Claims) (Principal, error) {
	switch c.Role {
	case RoleAdmin:
		return Principal{Role: RoleAdmin, Subject: c.Subject}, nil
	case RoleTenant:
		u, err := ParseTenantID(c.TenantID)
		if err != nil {
			return Principal{}, ErrTenantID
		}
		return Principal{Role: RoleTenant, TenantID: u.String(), Subject: c.Subject}, nil
	default:
		return Principal{}, ErrRole
	}
}

// Mint signs a token for role (and tenantID when role is tenant) valid for ttl, with
// iss and aud from cfg when set. It is for operators and tests, not a login endpoint.
func Mint(cfg Config, role Role, tenantID string, ttl time.Duration) (string, error) {
	if !cfg.Enabled() {
		return "", ErrSecretNotSet
	}
	if ttl <= 0 || (cfg.MaxTTL > 0 && ttl > cfg.MaxTTL) {
		return "", ErrMintTTL
	}
	now := time.Now()
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    cfg.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Role: role,
	}
	switch role {
	case RoleAdmin:
		claims.Subject = "admin"
	case RoleTenant:
		u, err := ParseTenantID(tenantID)
		if err != nil {
			return "", fmt.Errorf("%w: %q", ErrMintTenantID, tenantID)
		}
		claims.TenantID = u.String()
		claims.Subject = "tenant:" + u.String()
	default:
		return "", fmt.Errorf("%w, got %q", ErrMintRole, role)
	}
	if cfg.Audience != "" {
		claims.Audience = jwt.ClaimStrings{cfg.Audience}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(cfg.Secret))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

type ctxKey struct{}

// NewContext returns ctx carrying p, for code below the HTTP layer.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal Middleware stored in the request's user context.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
