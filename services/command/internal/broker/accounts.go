package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/multitenant/mtm/platform/rabbit"
	"github.com/multitenant/mtm/platform/rabbitadmin"
	"github.com/multitenant/mtm/services/command/internal/tenant"
)

// Accounts manages each tenant's own RabbitMQ user through the management API. The user
// is rabbit.UserName(tenant id) and may only publish to the tenant's exchange.
type Accounts struct {
	admin *rabbitadmin.Client
	vhost string
}

// NewAccounts manages tenant users on vhost (the services' own, from RABBITMQ_URL).
func NewAccounts(admin *rabbitadmin.Client, vhost string) *Accounts {
	return &Accounts{admin: admin, vhost: vhost}
}

// TenantPermissions are a tenant user's permissions: configure nothing (no declare,
// delete or bind of anything), read nothing (no consume, get or purge of any queue, its
// own DLQ included) and write only the tenant's exchange, which routes to its work queue
// alone. The write pattern also covers the work queue's own name, which only matters
// for binding to it, and binding needs read on the source exchange, which it has not.
// "^$" matches no resource: the default exchange is checked as "amq.default".
func TenantPermissions(tenantID string) rabbitadmin.Permissions {
	return rabbitadmin.Permissions{
		Configure: "^$",
		Write:     "^" + regexp.QuoteMeta(rabbit.ExchangeName(tenantID)) + "$",
		Read:      "^$",
	}
}

// passwordBytes is the entropy of a generated password (256 bits).
const passwordBytes = 32

// newPassword is a fresh random password, URL-safe so it fits an amqp:// URI as is.
func newPassword() string {
	b := make([]byte, passwordBytes)
	_, _ = rand.Read(b) // never fails: crypto/rand aborts the process instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// Grant gives the tenant's user a new password, creating the user if needed, and sets
// its permissions (again: a no-op unless they were changed by hand). The password
// exists only in the returned credentials; the broker receives its salted hash.
func (a *Accounts) Grant(ctx context.Context, tenantID string) (tenant.Credentials, error) {
	user := rabbit.UserName(tenantID)
	password := newPassword()
	if err := a.admin.PutUser(ctx, user, password); err != nil {
		return tenant.Credentials{}, fmt.Errorf("put broker user %s: %w", user, err)
	}
	if err := a.admin.SetPermissions(ctx, a.vhost, user, TenantPermissions(tenantID)); err != nil {
		return tenant.Credentials{}, fmt.Errorf("set permissions of broker user %s: %w", user, err)
	}
	return tenant.Credentials{Username: user, Password: password, VHost: a.vhost}, nil
}

// Disconnect closes the connections the tenant's user has open: a new password does
// not end sessions opened with the old one.
func (a *Accounts) Disconnect(ctx context.Context, tenantID string) error {
	user := rabbit.UserName(tenantID)
	if err := a.admin.CloseConnections(ctx, user, "credentials rotated"); err != nil {
		return fmt.Errorf("close connections of broker user %s: %w", user, err)
	}
	return nil
}

// Delete deletes the tenant's user (the broker closes its connections). A missing
// user is success, so it can be retried.
func (a *Accounts) Delete(ctx context.Context, tenantID string) error {
	user := rabbit.UserName(tenantID)
	if err := a.admin.DeleteUser(ctx, user); err != nil {
		return fmt.Errorf("delete broker user %s: %w", user, err)
	}
	return nil
}

// Tenants lists the tenant ids whose user has permissions on the vhost. Users of other
// shapes (the services' own, an operator's) are not tenants and never listed.
func (a *Accounts) Tenants(ctx context.Context) ([]string, error) {
	users, err := a.admin.VHostUsers(ctx, a.vhost)
	if err != nil {
		return nil, fmt.Errorf("list broker users of vhost %q: %w", a.vhost, err)
	}
	var ids []string
	for _, u := range users {
		id, ok := strings.CutPrefix(u, rabbit.UserName(""))
		if !ok || len(id) != 36 {
			continue
		}
		// At length 36 uuid.Parse accepts only the canonical form the names are built from.
		if parsed, err := uuid.Parse(id); err == nil && parsed.String() == id {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// drainingPermissions are a draining tenant's user's: nothing at all. Its queue is
// being emptied before the tenant is deleted, so producers must not add to it.
var drainingPermissions = rabbitadmin.Permissions{Configure: "^$", Write: "^$", Read: "^$"}

// RevokeWrite takes the tenant user's right to publish away and closes its
// connections: a channel keeps the permissions it checked, so only new ones see the
// change. The user stays (its deletion comes with the tenant's); nothing restores the
// permission, since a drain ends in the tenant's deletion.
func (a *Accounts) RevokeWrite(ctx context.Context, tenantID string) error {
	user := rabbit.UserName(tenantID)
	if err := a.admin.SetPermissions(ctx, a.vhost, user, drainingPermissions); err != nil {
		return fmt.Errorf("revoke write permission of broker user %s: %w", user, err)
	}
	if err := a.admin.CloseConnections(ctx, user, "tenant draining: publishing is no longer allowed"); err != nil {
		return fmt.Errorf("close connections of broker user %s: %w", user, err)
	}
	return nil
}
