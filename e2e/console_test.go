//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/multitenant/mtm/client"
	"github.com/multitenant/mtm/platform/amqptest"
	"github.com/multitenant/mtm/platform/auth"
)

// chromiumInstall is what a machine without a browser must run; CI (.ci/run) does it.
const chromiumInstall = "apt-get install -y chromium"

// chromiumPath finds a Chromium or Chrome binary. A missing browser fails the test
// (never skips it): the console's browser tests must always run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium found on PATH (chromium, chromium-browser, google-chrome): install it with `%s` (Debian), or set CHROMIUM to the browser binary", chromiumInstall)
	return ""
}

// browser is one headless Chromium tab for the whole test: one browser start, a few
// tens of seconds on two cores.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string // the console's URL
	shots string // where screenshots go
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		// Tests run as root in CI containers, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1360, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Do starts the browser; its context must carry no deadline (it would end
	// the browser with it).
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start Chromium")

	shots := t.TempDir()
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		shots = filepath.Join("..", "docs", "console")
		require.NoError(t, os.MkdirAll(shots, 0o755))
	}
	return &browser{t: t, ctx: ctx, base: base, shots: shots}
}

// do runs steps with a deadline, so a page that never shows what a step waits for fails
// the test with the step's error instead of hanging it.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, steps...))
}

func (b *browser) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

// waitJS polls a JavaScript predicate until it is truthy (live refresh, navigation
// after a form post, a redirect). It evaluates it afresh each time rather than inside
// the page, because a navigation in between destroys whatever ran in the old page.
func (b *browser) waitJS(predicate string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+predicate+")"))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("waiting %s for %s (last error %v); page text:\n%s", within, predicate, lastErr, html)
}

// waitText waits until the page's visible text contains s.
func (b *browser) waitText(s string, within time.Duration) {
	b.t.Helper()
	q, err := json.Marshal(s)
	require.NoError(b.t, err)
	b.waitJS(fmt.Sprintf(`document.body && document.body.innerText.includes(%s)`, q), within)
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	require.NoError(b.t, err, js)
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return v
}

// fetchStatus runs a fetch from the page (same origin, the session cookie goes along)
// and returns the HTTP status.
func (b *browser) fetchStatus(script string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, script)
	return v
}

func (b *browser) present(sel string) bool {
	b.t.Helper()
	q, err := json.Marshal(sel)
	require.NoError(b.t, err)
	return b.eval(fmt.Sprintf(`String(document.querySelector(%s) !== null)`, q)) == "true"
}

// screenshot saves the whole page as name.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644))
}

// signIn pastes token into the sign-in page.
func (b *browser) signIn(token string) {
	b.t.Helper()
	b.open("/signin")
	b.do(chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#signin-submit")))
	b.waitJS(`location.pathname === "/tenants" && document.querySelector("#tenant-rows") !== null`, 10*time.Second)
}

func (b *browser) signOut() {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS("#signout")))
	b.waitJS(`location.pathname === "/signin"`, 10*time.Second)
}

// The console in a real browser against the real services, with authentication on:
// sign in by pasting a token, create a tenant, watch published messages appear without
// a reload, pause and resume, dry-run then redrive a dead letter, the event history,
// what a tenant token sees (its own tenant only, no admin controls), a cross-site POST
// refused for want of a CSRF token, delete with drain, and the typed confirmation of a
// plain delete. Each page is photographed (docs/console with UPDATE_SCREENSHOTS=1).
func TestConsoleInBrowser(t *testing.T) {
	const secret = "e2e-console-secret-3f9c1a7d-5b2e-4c8f"
	env := Env(t)
	env["JWT_SECRET"] = secret
	// The drain manager deletes a drained tenant after two empty looks this far apart.
	env["DRAIN_CHECK_INTERVAL"] = "200ms"
	s := startSystemWith(t, env)
	consoleEnv := map[string]string{
		"JWT_SECRET":       secret,
		"COMMAND_URL":      s.command.URL(),
		"QUERY_URL":        s.query.URL(),
		"SHUTDOWN_TIMEOUT": "5s",
	}
	con := Start(t, "console", consoleEnv)
	con.WaitStatus(t, "/readyz", 200, 30*time.Second)

	cfg := auth.Config{Secret: secret}
	admin, err := auth.Mint(cfg, auth.RoleAdmin, "", time.Hour)
	require.NoError(t, err)
	api := client.New(s.command.URL(), s.query.URL(), admin)
	ctx := context.Background()
	b := newBrowser(t, con.URL())

	// Signed out, a page sends the browser to sign in, which then returns to it.
	b.open("/tenants")
	b.waitJS(`location.pathname === "/signin"`, 5*time.Second)
	b.screenshot("signin")
	b.do(chromedp.SetValue(chromedp.CSS("#token"), "not-a-token"), chromedp.Click(chromedp.CSS("#signin-submit")))
	b.waitText("This token cannot sign in: token is malformed.", 5*time.Second)
	b.signIn(admin)

	// Create a tenant through the form.
	name := "console-" + randHex(t)
	b.do(
		chromedp.SetValue(chromedp.CSS("#create-name"), name),
		chromedp.SetValue(chromedp.CSS("#create-workers"), "2"),
		chromedp.Click(chromedp.CSS("#create-submit")),
	)
	b.waitJS(`document.querySelector("#open-tenant") !== null`, 10*time.Second)
	href, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS("#open-tenant"), "href"))
	require.NoError(t, err)
	id := strings.TrimPrefix(href.Value, "/tenants/")
	_, err = uuid.Parse(id)
	require.NoError(t, err, "created page links the tenant: %q", href.Value)
	amqptest.CleanupTenant(t, id)
	require.Equal(t, name, b.text(".facts dd.strong"))

	// The tenants list shows it once the query side knows it (live refresh, no reload).
	b.open("/tenants")
	b.waitJS(fmt.Sprintf(`document.querySelector('tr[data-tenant=%q]') !== null`, id), 10*time.Second)
	b.waitJS(fmt.Sprintf(`document.querySelector('tr[data-tenant=%q]').innerText.includes("2 / 2")`, id), 15*time.Second)
	b.screenshot("tenants")

	// Messages published through the API appear in the open page without a reload; a
	// payload with markup in it is shown as text and never runs.
	b.open("/tenants/" + id + "/messages")
	b.waitText("No messages stored yet.", 5*time.Second)
	b.eval(`window.__marker = "same page"; ""`)
	const hostile = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">`
	for i := range 3 {
		body := fmt.Sprintf(`{"order":%d,"customer":{"name":"Ada","tier":"gold"},"items":[{"sku":"A-1","qty":2}],"note":%q}`, i+1, hostile)
		_, err := api.Publish(ctx, id, json.RawMessage(body), "")
		require.NoError(t, err)
	}
	b.waitJS(`document.querySelectorAll("#message-rows pre.payload").length === 3`, 15*time.Second)
	require.Equal(t, "same page", b.eval(`String(window.__marker)`), "the rows came by live refresh, not a reload")
	require.Equal(t, "undefined", b.eval(`typeof window.__xss`), "tenant-controlled markup must not run")
	require.Contains(t, b.text("#message-rows"), `"note": "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">"`, "shown as text")
	require.Contains(t, b.text("#message-rows"), "\"customer\": {", "pretty-printed")
	b.screenshot("messages")

	// Pause, then resume.
	b.open("/tenants/" + id)
	b.do(chromedp.Click(chromedp.CSS("#pause")))
	b.waitText("Paused: the workers stop", 10*time.Second)
	require.Equal(t, "paused", b.text("#tenant-status"))
	b.waitJS(`document.querySelector("#tenant-workers").innerText.startsWith("0 running")`, 15*time.Second)
	b.screenshot("tenant-paused")
	b.do(chromedp.Click(chromedp.CSS("#resume")))
	b.waitText("Resumed: the desired workers start again", 10*time.Second)
	require.Equal(t, "active", b.text("#tenant-status"))
	b.waitJS(`document.querySelector("#tenant-workers").innerText.startsWith("2 running")`, 15*time.Second)

	// A poison message lands in the dead-letter archive; a dry run counts it and only
	// then may it be redriven (it fails again: it comes back with its deaths raised).
	poison := "poison-" + randHex(t)
	publishAMQP(t, amqptest.Dial(t), id, []string{poison}, func(int) string { return `{"broken":` })
	require.Eventually(t, func() bool {
		p, err := api.DeadLetters(ctx, id, client.DeadLetterQuery{Status: "pending"})
		return err == nil && len(p.Data) == 1
	}, 15*time.Second, 100*time.Millisecond)
	b.open("/tenants/" + id + "/dead-letters")
	b.waitText(poison, 5*time.Second)
	require.Contains(t, b.text("#dl-rows"), `{"broken":`, "the raw body, as text")
	require.Equal(t, "true", b.eval(`String(document.querySelector("#dl-redrive").disabled)`), "no redrive before a dry run")
	b.do(chromedp.Click(chromedp.CSS("#dl-rows input.dl-pick")), chromedp.Click(chromedp.CSS("#dl-dryrun")))
	b.waitText("Dry run: redrive or purge would act on 1 pending dead letter (the 1 selected row).", 10*time.Second)
	require.Equal(t, "false", b.eval(`String(document.querySelector("#dl-redrive").disabled)`))
	require.Equal(t, "true", b.eval(`String(document.querySelector("#dl-rows input.dl-pick").checked)`), "the selection survives the dry run")
	b.screenshot("dead-letters")
	b.do(chromedp.Click(chromedp.CSS("#dl-redrive")))
	b.waitText("Redrove 1 dead letter into the tenant's queue.", 10*time.Second)
	require.Eventually(t, func() bool {
		p, err := api.DeadLetters(ctx, id, client.DeadLetterQuery{Status: "pending"})
		return err == nil && len(p.Data) == 1 && p.Data[0].Deaths == 2
	}, 15*time.Second, 100*time.Millisecond, "redriven, failed again, back as pending")

	// The history shows every command, redrive included, with the console's correlation id.
	b.open("/tenants/" + id + "/events")
	b.waitText("tenant.dead_letters_redriven.v1", 5*time.Second)
	for _, ev := range []string{"tenant.created.v1", "tenant.paused.v1", "tenant.resumed.v1"} {
		require.Contains(t, b.text("#event-rows"), ev)
	}
	require.Contains(t, b.text("#event-rows"), "console-")
	b.screenshot("events")

	// A tenant token sees its own tenant only, without admin controls; another tenant is
	// a 404 like any unknown one.
	other, err := api.CreateTenant(ctx, "console-other-"+randHex(t), 1)
	require.NoError(t, err)
	amqptest.CleanupTenant(t, other.ID)
	require.Eventually(t, func() bool { _, err := api.GetTenant(ctx, other.ID); return err == nil }, 10*time.Second, 50*time.Millisecond)
	tenantTok, err := auth.Mint(cfg, auth.RoleTenant, id, time.Hour)
	require.NoError(t, err)
	b.signOut()
	b.signIn(tenantTok)
	b.waitJS(fmt.Sprintf(`document.querySelector('tr[data-tenant=%q]') !== null`, id), 5*time.Second)
	require.Equal(t, "1", b.eval(`String(document.querySelectorAll("#tenant-rows tr").length)`))
	require.NotContains(t, b.text("#tenant-rows"), other.Name)
	require.False(t, b.present("#create-form"), "no create form for a tenant token")
	b.screenshot("tenant-token")
	b.open("/tenants/" + id)
	b.waitJS(`document.querySelector("#summary") !== null`, 5*time.Second)
	for _, sel := range []string{"#pause", "#resume", "#resize-submit", "#delete-form"} {
		require.False(t, b.present(sel), "%s is hidden from a tenant token", sel)
	}
	b.open("/tenants/" + other.ID)
	b.waitJS(`document.querySelector("#problem-detail") !== null`, 5*time.Second)
	require.Contains(t, b.text(".big-status"), "404")
	require.NotContains(t, b.eval(`document.body.innerText`), other.Name)
	// The console refuses an admin action to a tenant token itself (403), whatever the page showed.
	status := b.fetchStatus(fmt.Sprintf(`(async () => {
		const csrf = document.querySelector('meta[name="csrf-token"]').content;
		const r = await fetch("/tenants/%s/pause", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "_csrf=" + encodeURIComponent(csrf)});
		return String(r.status);
	})()`, id))
	require.Equal(t, "403", status)
	b.signOut()
	b.signIn(admin)

	// CSRF: a state-changing POST without the page's token is refused, and nothing
	// changes.
	status = b.fetchStatus(fmt.Sprintf(`(async () => {
		const r = await fetch("/tenants/%s/pause", {method: "POST"});
		return String(r.status);
	})()`, id))
	require.Equal(t, "403", status, "POST without a CSRF token")
	tn, err := api.GetTenant(ctx, id)
	require.NoError(t, err)
	require.Equal(t, client.StatusActive, tn.Status, "the refused POST paused nothing")

	// A plain delete needs the tenant's name typed in; the button stays disabled until it is.
	b.open("/tenants/" + other.ID)
	b.do(chromedp.Click(chromedp.CSS("#delete-drain")))
	require.Equal(t, "true", b.eval(`String(document.querySelector("#delete-submit").disabled)`))
	b.do(chromedp.SendKeys(chromedp.CSS("#delete-confirm"), other.Name))
	require.Equal(t, "false", b.eval(`String(document.querySelector("#delete-submit").disabled)`))
	b.screenshot("tenant")
	b.do(chromedp.Click(chromedp.CSS("#delete-submit")))
	b.waitText("Tenant deleted with its queue", 10*time.Second)
	require.Eventually(t, func() bool { _, err := api.GetTenant(ctx, other.ID); return client.IsStatus(err, 404) }, 10*time.Second, 50*time.Millisecond)

	// Delete with drain (the default): draining at once, gone once the queue is empty.
	b.open("/tenants/" + id)
	b.do(chromedp.Click(chromedp.CSS("#delete-submit")))
	b.waitText("Draining: new messages are refused", 10*time.Second)
	require.Contains(t, []string{"draining"}, b.text("#tenant-status"))
	require.Eventually(t, func() bool { _, err := api.GetTenant(ctx, id); return client.IsStatus(err, 404) }, 30*time.Second, 100*time.Millisecond)
	b.open("/tenants")
	b.waitJS(fmt.Sprintf(`document.querySelector('tr[data-tenant=%q]') === null && document.querySelector("#tenant-rows") !== null`, id), 5*time.Second)
}
