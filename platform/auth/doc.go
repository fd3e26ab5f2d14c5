// Package auth authenticates REST requests with HS256 JWTs (the JWT_SECRET setting) and
// decides which tenant's data a caller may see.
//
// # Tokens
//
// A token is an HS256 JWT signed with JWT_SECRET. It must carry exp; iss and aud are
// checked when JWT_ISSUER / JWT_AUDIENCE are set. Custom claims:
//
//	role       "admin"  everything: create, resize and delete tenants, read every tenant
//	           "tenant" publish to and read only the tenant named by tenant_id
//	tenant_id  UUID, required when role is "tenant"
//
// Anything else (alg none, RS256, HS512, a bad signature, expired, no exp, wrong
// iss/aud, unknown role, tenant role without a UUID tenant_id) is answered 401
// problem+json with a WWW-Authenticate: Bearer header (RFC 6750).
//
// # API
//
//	cfg := auth.ConfigFrom(&cfg.Base)          // Secret, Issuer, Audience from config.Base
//	httpserver.Options{Auth: auth.Middleware(cfg)} // platform/app installs it before every route
//	auth.PrincipalFrom(c)                      // Principal{Role, TenantID} of the request
//	auth.RequireAdmin()                        // route middleware: 403 for tenant principals
//	auth.TenantAccess(c, id)                   // nil, or the 404 tenant_not_found problem
//	auth.TenantNotFound()                      // that same 404: use it for unknown tenants too
//	auth.ParseTenantID(raw)                    // the one tenant id form both services accept
//	auth.PathTenantID(c.Params("id"))          // the same, TenantNotFound when malformed
//	p.TenantScope()                            // ("<id>", true) for a tenant principal: filter lists
//	auth.FromContext(c.UserContext())          // the principal below the HTTP layer
//	auth.Mint(cfg, auth.RoleTenant, id, time.Hour)
//	auth.RegisterTokenFlags(flag.CommandLine)  // -token -role -tenant -ttl for bin/command
//
// With an empty Secret the middleware lets every request through as an implicit admin
// (app.New already logs one warning that authentication is off).
//
// Middleware skips /healthz, /readyz, /openapi.json and /swagger/* (matched the way Fiber's router
// matches them: case-insensitive, trailing slash ignored, unless the app is configured
// otherwise). Every other path, including unknown ones, needs a token, so an anonymous
// caller learns nothing about which routes exist; /metrics, which names every tenant,
// needs an admin token (scrapers use the separate METRICS_ADDR listener instead).
//
// PrincipalFrom fails closed: a request that did not pass through Middleware has no
// role, so RequireAdmin answers 403 and TenantAccess answers 404.
//
// # Wiring the services
//
// Each service takes these as hooks in a Guards value installed with WithGuards
// (command: Admin, TenantAccess; query: TenantAccess, TenantScope), so its handlers are
// tested without tokens and a zero Guards lets everything through.
//
// Command service:
//
//	POST   /tenants                           auth.RequireAdmin()
//	PUT    /tenants/:id/config/concurrency    auth.RequireAdmin()
//	PUT    /tenants/:id/config/rate-limit     auth.RequireAdmin()
//	DELETE /tenants/:id[?drain=true]          auth.RequireAdmin()
//	POST   /tenants/:id/credentials           auth.RequireAdmin()
//	POST   /tenants/:id/pause, .../resume     auth.RequireAdmin()
//	POST   /tenants/:id/dead-letters/redrive  auth.RequireAdmin()
//	DELETE /tenants/:id/dead-letters          auth.RequireAdmin()
//	POST   /tenants/:id/messages              auth.TenantAccess(c, c.Params("id")) first thing
//	                                          in the handler, before reading the body, so a
//	                                          foreign tenant gets 404 whatever it sends.
//
// Query service:
//
//	GET /tenants/:id, GET /tenants/:id/messages,  auth.PathTenantID, then auth.TenantAccess.
//	GET /tenants/:id/dead-letters,
//	GET /tenants/:id/events
//	GET /messages?tenant_id=                      auth.ParseTenantID (400 when missing or
//	                                              malformed), then auth.TenantAccess.
//	GET /tenants                                  if id, ok := auth.PrincipalFrom(c).TenantScope(); ok,
//	                                              list only that row (WHERE id = $1): a tenant
//	                                              sees a one-row list (or empty if deleted).
//
// bin/command's main (before app.New, so printing a token never dials anything):
//
//	tok := auth.RegisterTokenFlags(flag.CommandLine)
//	flag.Parse()
//	app.LoadConfig("command", &cfg, &cfg.Base, ":8080")
//	if tok.Requested() {
//		if err := tok.Print(auth.ConfigFrom(&cfg.Base), os.Stdout); err != nil {
//			fmt.Fprintf(os.Stderr, "command: %v\n", err)
//			os.Exit(2)
//		}
//		return
//	}
//
// # Tenant ids
//
// A tenant id is accepted only in the canonical 36-character UUID form, in either letter
// case (ParseTenantID); braces, urn:uuid: and bare hex are refused, so each tenant has one
// spelling in URLs, cursors and logs. A malformed id in a path names no tenant and gets
// the unknown tenant's 404 (PathTenantID); a malformed tenant_id query parameter is a bad
// request (400 invalid_tenant_id), since a parameter is input to validate, not a resource
// to look up.
//
// Both services answer an unknown tenant with auth.TenantNotFound() so a foreign tenant's
// 404 is byte-for-byte the 404 of a tenant that does not exist. Cursors are bound to the
// tenant they were issued for, so once TenantAccess passed, a foreign cursor fails the
// binding check (400) and reveals nothing.
package auth
