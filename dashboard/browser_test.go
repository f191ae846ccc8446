package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/flow"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// adminToken is the coordinator API's admin token (server.WithAdminToken).
const adminToken = "s3cret-dashboard-token"

// findChromium returns the browser to drive, or skips the test (fails it
// when DTX_REQUIRE_CHROMIUM=1).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("DTX_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("Chromium not found and DTX_REQUIRE_CHROMIUM=1 (apt-get install chromium)")
	}
	t.Skip("Chromium not found (apt-get install chromium; DTX_REQUIRE_CHROMIUM=1 makes this a failure)")
	return ""
}

// artifacts is where screenshots go: $DTX_ARTIFACTS, or a temporary
// directory of the test.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DTX_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// guard stands in front of the API and records the Authorization headers
// the dashboard sent with its admin actions (the API checks them).
type guard struct {
	next http.Handler
	mu   sync.Mutex
	seen []string // "<path> <Authorization>"
	// sites: "<Sec-Fetch-Site> <Origin> <Host>" of the same requests (the
	// API refuses cross-site admin actions).
	sites []string
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/transactions/") &&
		(strings.HasSuffix(r.URL.Path, "/retry") || strings.HasSuffix(r.URL.Path, "/abort")) {
		g.mu.Lock()
		g.seen = append(g.seen, r.URL.Path+" "+r.Header.Get("Authorization"))
		g.sites = append(g.sites, r.Header.Get("Sec-Fetch-Site")+" "+r.Header.Get("Origin")+" "+r.Host)
		g.mu.Unlock()
	}
	g.next.ServeHTTP(w, r)
}

func (g *guard) fetchSites() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.sites...)
}

func (g *guard) requests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.seen...)
}

// TestBrowser drives the dashboard in headless Chromium against a real
// coordinator and the reference shop on loopback: the live list, the
// sequence diagram of a compensated saga, the needs-attention view, and
// the retry and abort actions with their confirmation dialog and token.
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	out := artifacts(t)
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)

	// Coordinator with fast retries, its API behind the guard.
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	coord, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		RetryBase: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond, Logger: quiet,
	})
	require.NoError(t, err)
	require.NoError(t, coord.Start(ctx))
	t.Cleanup(func() { coord.Close(context.Background()) })
	api := server.New(coord, server.WithAdminToken(adminToken))
	g := &guard{next: api}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(api.CloseStreams) // runs before srv.Close
	cl := client.ForURL(srv.URL, nil)

	// The shop; user 2 is always declined by the payment service.
	sh, err := shop.Start(ctx, shop.Config{
		Dir: t.TempDir(), CoordinatorURL: srv.URL, Pattern: order.PatternSaga,
		BranchTimeout: 2 * time.Second, SagaTimeout: 30 * time.Second, Logger: quiet,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sh.Close(cctx)
	})
	place := func(user int64, key string) *order.Order {
		t.Helper()
		o, err := sh.PlaceOrder(ctx, user, []order.Item{{ProductID: 1, Quantity: 1}}, key, true)
		require.NoError(t, err)
		return o
	}
	ok1, ok2 := place(1, "k1"), place(1, "k2")
	declined := place(2, "k3")
	require.Equal(t, order.Cancelled, declined.Status)
	declinedGID := order.GID(declined.ID)

	// A saga whose only participant keeps answering 503: retried for ever,
	// so it stays running and needs attention.
	var stuckCalls sync.Map
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		stuckCalls.Store(r.URL.Path, true)
		if r.URL.Path == "/ledger/post" {
			http.Error(w, "ledger unavailable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(stuck.Close)
	_, err = cl.SubmitSaga(ctx, saga.Spec{GID: "stuck-1", Timeout: dtx.Duration(10 * time.Minute), Steps: []saga.Step{
		{Name: "ledger", Action: stuck.URL + "/ledger/post", Compensate: stuck.URL + "/ledger/unpost"},
	}}, false)
	require.NoError(t, err)

	// A TCC transaction whose two participants answer yes: tries, then confirms.
	_, err = cl.SubmitTCC(ctx, tcc.Spec{GID: "tcc-1", Participants: []tcc.Participant{
		{Name: "stock", Try: stuck.URL + "/stock/try", Confirm: stuck.URL + "/stock/confirm", Cancel: stuck.URL + "/stock/cancel"},
		{Name: "wallet", Try: stuck.URL + "/wallet/try", Confirm: stuck.URL + "/wallet/confirm", Cancel: stuck.URL + "/wallet/cancel"},
	}}, true)
	require.NoError(t, err)

	b := startBrowser(t, chromium, out, func() string { return fmt.Sprintf("admin requests so far: %q", g.requests()) })
	do, eval, text, shot := b.do, b.eval, b.text, b.shot
	row := func(gid string) string { return fmt.Sprintf(`#tx-rows tr[data-gid=%q]`, gid) }

	// The list: "/" redirects to the dashboard, every order is a row.
	do("open the list", chromedp.Navigate(srv.URL+"/"),
		visible(row(order.GID(ok1.ID))), visible(row(order.GID(ok2.ID))),
		visible(row(declinedGID)), visible(row("stuck-1")), visible(`#live.on`))
	var loc string
	eval(`location.pathname`, &loc)
	require.Equal(t, "/ui/", loc)
	require.Equal(t, "1", text(`button.count.failed b`))

	// Live: an order placed now appears without a reload.
	var marker bool
	eval(`window.sameDocument = true`, &marker)
	live := place(1, "k4")
	do("live row", visible(row(order.GID(live.ID))),
		until(fmt.Sprintf(`document.querySelector('%s').dataset.status === 'succeeded'`, row(order.GID(live.ID)))))
	eval(`window.sameDocument === true`, &marker)
	require.True(t, marker, "the row came over the event stream, not a page load")
	shot("list.png")

	// Filters: the failed chip keeps only the compensated order; the
	// search finds a transaction by gid substring.
	do("filter failed", click(`button.count.failed`),
		until(`[...document.querySelectorAll('#tx-rows tr[data-gid]')].length === 1`))
	var gids []string
	eval(`[...document.querySelectorAll('#tx-rows tr[data-gid]')].map(r => r.dataset.gid)`, &gids)
	require.Equal(t, []string{declinedGID}, gids)
	eval(`location.hash`, &loc)
	require.Equal(t, "#/?status=failed", loc, "filters are kept in the URL")
	do("search", chromedp.Navigate(srv.URL+"/ui/#/"), visible(row("stuck-1")),
		chromedp.SendKeys(chromedp.CSS(`#f-q`), "stuck"),
		until(`[...document.querySelectorAll('#tx-rows tr[data-gid]')].map(r => r.dataset.gid).join() === 'stuck-1'`))

	// The pattern filter, then the TCC transaction's diagram: two tries and
	// two confirms, nothing undone.
	do("filter tcc", chromedp.Navigate(srv.URL+"/ui/#/"), visible(row("stuck-1")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(() => { const s = document.querySelector('#f-pattern'); s.value = 'tcc'; s.dispatchEvent(new Event('change')); return true; })()`)(ctx, tg)
			return err
		}),
		until(`[...document.querySelectorAll('#tx-rows tr[data-gid]')].map(r => r.dataset.gid).join() === 'tcc-1'`),
		click(row("tcc-1")+` a`), visible(`svg#seq g.call`))
	var tccCalls []string
	eval(`[...document.querySelectorAll('svg#seq g.call')].map(g => g.dataset.step + ':' + g.dataset.op + ':' + g.dataset.kind + ':' + g.dataset.outcome).sort()`, &tccCalls)
	require.Equal(t, []string{
		"stock.confirm:confirm:forward:success", "stock.try:try:forward:success",
		"wallet.confirm:confirm:forward:success", "wallet.try:try:forward:success",
	}, tccCalls)
	var tccParts []string
	eval(`[...document.querySelectorAll('svg#seq g.participant')].map(g => g.dataset.name)`, &tccParts)
	require.Equal(t, []string{"coordinator", "stock", "wallet"}, tccParts)
	shot("detail-tcc.png")

	// Without the admin token, the participants' error details are hidden.
	do("open the compensated saga without the token", chromedp.Navigate(srv.URL+"/ui/#/tx/"+declinedGID), visible(`svg#seq g.call`))
	require.Contains(t, text(`#tx-reason`), "failed: hidden: admin token required")
	require.NotContains(t, text(`#tx-reason`), "declined")
	// An operator who entered the token (in an action dialog, which keeps
	// it in the browser) sees them.
	var stored bool
	eval(`localStorage.setItem('dtx.token', '`+adminToken+`') === undefined`, &stored)
	require.True(t, stored)

	// The compensated saga as a sequence diagram.
	do("open the compensated saga", chromedp.Navigate(srv.URL+"/ui/#/"), visible(row(declinedGID)),
		click(row(declinedGID)+` a`), visible(`svg#seq g.call`))
	var diagram struct {
		Participants  []string `json:"participants"`
		Compensations []string `json:"compensations"`
		Failed        []string `json:"failed"`
		Statuses      []string `json:"statuses"`
		Reason        string   `json:"reason"`
	}
	eval(`(() => {
		const q = (s) => [...document.querySelectorAll(s)];
		return {
			participants: q('svg#seq g.participant').map(g => g.dataset.name),
			compensations: q('svg#seq g.call[data-kind=compensation]').map(g => g.dataset.step + ':' + g.dataset.op + ':' + g.dataset.outcome),
			failed: q('svg#seq g.call[data-outcome=failure]').map(g => g.dataset.step + ':' + g.dataset.op + ':' + g.querySelector('.error-detail text').textContent),
			statuses: q('svg#seq g.status-note').map(g => g.dataset.status),
			reason: document.querySelector('#tx-reason').textContent,
		};
	})()`, &diagram)
	require.Equal(t, []string{"coordinator", "orders", "inventory", "payment"}, diagram.Participants)
	// The order's cancel depends on no other step (F10: the order is
	// CANCELLED at once), so it may come anywhere; inventory is undone
	// after the payment chained on it.
	require.ElementsMatch(t, []string{"payment:compensate:success", "inventory:compensate:success", "order:compensate:success"}, diagram.Compensations,
		"every step that ran or may have run is compensated")
	require.Less(t, slices.Index(diagram.Compensations, "payment:compensate:success"),
		slices.Index(diagram.Compensations, "inventory:compensate:success"), "in reverse order of the chain: %v", diagram.Compensations)
	require.Len(t, diagram.Failed, 1)
	require.True(t, strings.HasPrefix(diagram.Failed[0], "payment:action:HTTP 409"), diagram.Failed[0])
	require.Contains(t, diagram.Failed[0], "declined")
	require.Equal(t, []string{"running", "compensating", "failed"}, diagram.Statuses)
	require.Contains(t, diagram.Reason, "declined")
	var disabled []bool
	eval(`[document.querySelector('#btn-retry').disabled, document.querySelector('#btn-abort').disabled]`, &disabled)
	require.Equal(t, []bool{true, true}, disabled, "a finished transaction offers no action")
	shot("detail-compensated.png")

	// Needs attention: the stuck saga, for its failing branch.
	do("attention", chromedp.Navigate(srv.URL+"/ui/#/attention"), visible(`.attn[data-gid="stuck-1"]`))
	require.Regexp(t, `ledger action failed \d+ times; last: HTTP 503`, text(`.attn[data-gid="stuck-1"] .why ul`))
	var listed []string
	eval(`[...document.querySelectorAll('.attn')].map(e => e.dataset.gid)`, &listed)
	require.Equal(t, []string{"stuck-1"}, listed, "finished transactions need no attention")
	shot("attention.png")

	// The stuck saga's detail: retry with a wrong token is refused (401)
	// and says so; cancelling the dialog sends nothing; abort with the
	// right token compensates it.
	do("open the stuck saga", click(`.attn[data-gid="stuck-1"] a.gid`),
		visible(`svg#seq g.call.pending`), chromedp.WaitEnabled(chromedp.CSS(`#btn-retry`)),
		// The page follows the retries live; a run of identical ones is folded.
		until(`document.querySelector('svg#seq g.repeat') !== null`))
	shot("detail-retrying.png")
	do("retry with a wrong token", click(`#btn-retry`), visible(`dialog#confirm[open]`),
		chromedp.SetValue(chromedp.CSS(`#confirm-token`), "wrong"),
		click(`#confirm-ok`), visible(`#action-result.error-box`))
	require.Contains(t, text(`#action-result`), "Not authorised (401)")
	require.Equal(t, []string{"/v1/transactions/stuck-1/retry Bearer wrong"}, g.requests())

	do("abort, then cancel the dialog", chromedp.WaitEnabled(chromedp.CSS(`#btn-abort`)), click(`#btn-abort`), visible(`dialog#confirm[open]`))
	require.Equal(t, "Abort (compensate)?", text(`#confirm-title`))
	token, err := chromedp.Run(b.tctx, chromedp.Value(chromedp.CSS(`#confirm-token`)))
	require.NoError(t, err)
	require.Equal(t, "wrong", token, "the token is remembered in the browser")
	// Cancel, and open the dialog again in the same task: the cancelled
	// dialog's close event comes after the new one is open, and must not
	// answer it (a CI run lost an abort that way, clicked after a cancel).
	var reopened bool
	eval(`(() => { document.querySelector('#confirm-cancel').click(); document.querySelector('#btn-abort').click(); return true; })()`, &reopened)
	require.True(t, reopened)
	require.Len(t, g.requests(), 1, "a cancelled dialog sends nothing")

	do("abort", visible(`dialog#confirm[open]`),
		chromedp.SetValue(chromedp.CSS(`#confirm-token`), adminToken),
		chromedp.SetValue(chromedp.CSS(`#confirm-reason`), "ledger is down"),
		click(`#confirm-ok`), visible(`#action-result.ok-box`),
		visible(`svg#seq g.status-note[data-status=failed]`))
	require.Equal(t, "/v1/transactions/stuck-1/abort Bearer "+adminToken, g.requests()[1])
	// The browser marks the dashboard's actions as same-origin, which the
	// API's cross-site check lets through.
	for _, site := range g.fetchSites() {
		t.Logf("admin action: Sec-Fetch-Site, Origin, Host: %s", site)
		f := strings.Split(site, " ")
		require.Contains(t, []string{"", "same-origin"}, f[0], site)
		if f[1] != "" {
			require.Equal(t, "http://"+f[2], f[1], site)
		}
	}
	d, err := cl.Get(ctx, "stuck-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "ledger is down")
	_, undone := stuckCalls.Load("/ledger/unpost")
	require.True(t, undone, "the abort compensated the step")
	var comp int
	eval(`document.querySelectorAll('svg#seq g.call[data-kind=compensation][data-outcome=success]').length`, &comp)
	require.Equal(t, 1, comp)
	shot("detail-aborted.png")

	// Every recorded call is drawn, folded or not.
	calls := 0
	for _, e := range d.Events {
		if e.Branch >= 0 {
			calls++
		}
	}
	var drawn struct{ Calls, Folded int }
	countJS := `(() => ({
		Calls: document.querySelectorAll('svg#seq g.call:not(.pending)').length,
		Folded: [...document.querySelectorAll('svg#seq g.repeat')].reduce((n, g) => n + Number(g.dataset.count), 0),
	}))()`
	eval(countJS, &drawn)
	require.Positive(t, drawn.Folded)
	require.Equal(t, calls, drawn.Calls+drawn.Folded)
	do("show every call", click(`#show-all`), until(`document.querySelector('svg#seq g.repeat') === null`))
	eval(countJS, &drawn)
	require.Equal(t, calls, drawn.Calls)

	// Not found.
	do("unknown gid", chromedp.Navigate(srv.URL+"/ui/#/tx/nope"), visible(`#detail-error`))
	require.Contains(t, text(`#detail-error`), "No transaction nope")

	// This server records no flows: the Flows view says so, without error.
	do("no flows", chromedp.Navigate(srv.URL+"/ui/#/flows"), visible(`#flows-none`))
	require.Contains(t, text(`#flows-none`), "records no flows")

	b.noJSErrors()
}

// browser is a headless Chromium driven by chromedp, with the steps the
// browser tests are written in. Every uncaught exception, console.error
// and Content-Security-Policy violation of the page is collected.
type browser struct {
	t        *testing.T
	out      string          // screenshots
	tctx     context.Context // the whole test's time limit
	failInfo func() string   // added to the message of a failed step

	mu       sync.Mutex
	jsErrors []string
}

// startBrowser starts Chromium (stopped when t ends): a first empty run,
// then every step is bounded by one timeout derived from it.
func startBrowser(t *testing.T, chromium, out string, failInfo func() string) *browser {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1360, 1000))...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	require.NoError(t, chromedp.Do(bctx))
	b := &browser{t: t, out: out, failInfo: failInfo}
	require.NoError(t, chromedp.Listen(bctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			b.jsErrors = append(b.jsErrors, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *cdpruntime.EventConsoleAPICalled:
			if e.Type == cdpruntime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value))
				}
				b.jsErrors = append(b.jsErrors, "console.error: "+strings.Join(parts, " "))
			}
		}
	}))
	// Anything the Content-Security-Policy blocks (an inline style, a
	// script from elsewhere) is reported by every document as a console error.
	_, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))`,
	})
	require.NoError(t, err)
	tctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	b.tctx = tctx
	return b
}

// do runs one step; when it fails, the page as it was goes to
// failed-<step>.png beside the other screenshots.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.tctx, 20*time.Second)
	defer cancel()
	for i, step := range steps {
		if err := chromedp.Do(sctx, step); err != nil {
			if png, serr := chromedp.Run(b.tctx, chromedp.FullScreenshot(100)); serr == nil {
				name := filepath.Join(b.out, "failed-"+strings.ReplaceAll(what, " ", "-")+".png")
				os.WriteFile(name, png, 0o644)
				b.t.Logf("page at the failure: %s", name)
			}
			info := ""
			if b.failInfo != nil {
				info = " (" + b.failInfo() + ")"
			}
			b.t.Fatalf("%s, action %d of %d: %v%s", what, i+1, len(steps), err, info)
		}
	}
}

// eval evaluates js in the page and decodes its value into v.
func (b *browser) eval(js string, v any) {
	b.t.Helper()
	raw, err := chromedp.Run(b.tctx, chromedp.Evaluate[json.RawMessage](js))
	require.NoError(b.t, err, js)
	require.NoError(b.t, json.Unmarshal(raw, v), "%s: %s", js, raw)
}

// text returns the text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.tctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return s
}

// shot saves a screenshot of the whole page as name in the artefact dir.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.tctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.Greater(b.t, len(png), 1000)
	require.Equal(b.t, "\x89PNG", string(png[:4]))
	path := filepath.Join(b.out, name)
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
}

// noJSErrors fails the test if the page raised any JavaScript error.
func (b *browser) noJSErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(b.t, b.jsErrors, "the page raised no JavaScript error")
}

func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

// until waits (up to 10 s) for js to be true.
func until(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
		return err
	})
}

// TestBrowserFlows drives the Flows view against a flow store filled
// directly (no broker): the list, a cancelled flow drawn as a sequence
// diagram with its failure and compensations, its payloads, and the link
// from the transactions search.
func TestBrowserFlows(t *testing.T) {
	chromium := findChromium(t)
	out := artifacts(t)
	ctx := context.Background()
	dir := t.TempDir()

	st, err := sqlite.Open(ctx, filepath.Join(dir, "coordinator.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	coord, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, coord.Start(ctx))
	t.Cleanup(func() { coord.Close(context.Background()) })

	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "flows.db"), 4)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	flows := flow.NewStore(db)
	require.NoError(t, flows.Migrate(ctx))
	// record stores one flow of the shop's events: each step is
	// "type source", caused by the step before it, 1 ms + 2 ms per step later.
	base := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	record := func(gid string, payload map[string]string, steps ...string) {
		t.Helper()
		cause, offset := "", time.Duration(0)
		for i, s := range steps {
			typ, source, _ := strings.Cut(s, " ")
			id := gid + "/" + typ
			orderID, err := strconv.Atoi(strings.TrimPrefix(gid, "order-"))
			require.NoError(t, err)
			fields := map[string]any{"order_id": orderID}
			if reason := payload[typ]; reason != "" {
				fields["reason"] = reason
			}
			body, err := json.Marshal(fields)
			require.NoError(t, err)
			require.NoError(t, flows.Record(ctx, flow.Event{
				CorrelationID: gid, MessageID: id, CausationID: cause, Type: typ, Topic: typ, Source: source,
				PublishedAt: base.Add(offset), ObservedAt: base.Add(offset + time.Millisecond), Payload: body,
			}))
			cause = id
			offset += time.Duration(1+2*i) * time.Millisecond
		}
	}
	record("order-7", map[string]string{"payment-failed": "card declined"},
		"order-placed order", "stock-deducted inventory", "payment-failed payment", "stock-restored inventory", "order-cancelled order")
	record("order-8", nil,
		"order-placed order", "stock-deducted inventory", "payment-charged payment", "order-completed order")
	base = base.Add(time.Second)
	record("order-9", map[string]string{"stock-failed": "out of stock"},
		"order-placed order", "stock-failed inventory", "order-cancelled order")

	// The flow routes in front of the coordinator's API, as dtx demo and
	// dtx server --record-flows mount them.
	api := server.New(coord)
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("/v1/flows", flow.Handler(flows))
	mux.Handle("/v1/flows/", flow.Handler(flows))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(api.CloseStreams)

	b := startBrowser(t, chromium, out, nil)
	do, eval, text := b.do, b.eval, b.text

	// The list: newest activity first, the last event coloured by kind.
	flowRow := func(id string) string { return fmt.Sprintf(`#flow-rows tr[data-id=%q]`, id) }
	do("open the flows", chromedp.Navigate(srv.URL+"/ui/"), visible(`#live.on`),
		click(`nav a[data-nav=flows]`), visible(flowRow("order-7")), visible(flowRow("order-8")), visible(flowRow("order-9")))
	var listed []string
	eval(`[...document.querySelectorAll('#flow-rows tr')].map(r => r.dataset.id + ' ' + r.cells[1].textContent + ' ' + r.dataset.last + ' ' + r.querySelector('.ev').className)`, &listed)
	require.Equal(t, []string{
		"order-9 3 order-cancelled ev compensation",
		"order-7 5 order-cancelled ev compensation",
		"order-8 4 order-completed ev forward",
	}, listed)
	require.Contains(t, text(`nav a.active`), "Flows")
	require.Contains(t, text(`#flows-info`), "3 flow(s)")
	b.shot("flows-list.png")

	// The cancelled flow: one arrow per event, from its source to the
	// service that reacted; the last one, to which nothing reacted, ends
	// at the broker.
	do("open the cancelled flow", click(flowRow("order-7")+` a`), visible(`svg#flow-seq g.event`))
	var loc string
	eval(`location.hash`, &loc)
	require.Equal(t, "#/flow/order-7", loc)
	var diagram struct {
		Participants []string `json:"participants"`
		Events       []string `json:"events"`
		Lines        []int    `json:"lines"`
		Colors       []string `json:"colors"`
		Note         string   `json:"note"`
	}
	eval(`(() => {
		const q = (s) => [...document.querySelectorAll(s)];
		const ev = q('svg#flow-seq g.event');
		return {
			participants: q('svg#flow-seq g.participant').map(g => g.dataset.name),
			events: ev.map(g => [g.dataset.from + '->' + g.dataset.to, g.dataset.kind, g.querySelector('text.label').textContent, g.querySelector('text.offset').textContent].join(' | ')),
			lines: ev.map(g => g.querySelectorAll('line[marker-end]').length),
			colors: ev.map(g => g.querySelector('line').getAttribute('stroke')),
			note: document.querySelector('svg#flow-seq g.status-note').textContent,
		};
	})()`, &diagram)
	require.Equal(t, []string{"broker", "order", "inventory", "payment"}, diagram.Participants)
	require.Equal(t, []string{
		"order->inventory | forward | order-placed | +0.0 ms",
		"inventory->payment | forward | stock-deducted | +1.0 ms",
		"payment->inventory | failure | ✗ payment-failed | +4.0 ms",
		"inventory->order | compensation | ↩ stock-restored | +9.0 ms",
		"order->broker | compensation | ↩ order-cancelled | +16 ms",
	}, diagram.Events)
	require.Equal(t, []int{1, 1, 1, 1, 1}, diagram.Lines, "one arrow per event")
	require.Equal(t, []string{"#344054", "#344054", "#c62a2a", "#7a3fc2", "#7a3fc2"}, diagram.Colors,
		"forward events like calls, the failure like failures, the undoing like compensations")
	require.Contains(t, diagram.Note, "order-cancelled")
	require.Contains(t, text(`#flow-table`), "order-7/payment-failed")

	// An event's payload, by a click on its arrow.
	do("show a payload", click(`svg#flow-seq g.event[data-type=payment-failed] text.label`), visible(`#flow-payload`))
	require.Contains(t, text(`#flow-payload`), "Payload of payment-failed")
	require.Contains(t, text(`#flow-payload-text`), `"reason": "card declined"`)
	var selected []string
	eval(`[...document.querySelectorAll('svg#flow-seq g.event.sel, #flow-events tr.sel')].map(e => e.dataset.index)`, &selected)
	require.Equal(t, []string{"2", "2"}, selected)
	b.shot("flows.png")

	// The transactions search finds no coordinator record for a
	// choreographed order, but links its flow (by gid or order id).
	do("search for the order", chromedp.Navigate(srv.URL+"/ui/#/?q=9"), visible(`#flow-hint`))
	require.Contains(t, text(`#flow-hint`), "order-9")
	require.Contains(t, text(`#flow-hint`), "3 event(s), last order-cancelled")
	do("follow the link", click(`#flow-hint a`), visible(`svg#flow-seq g.event`),
		until(`document.querySelectorAll('svg#flow-seq g.event').length === 3`))
	var ends []string
	eval(`[...document.querySelectorAll('svg#flow-seq g.event')].map(g => g.dataset.type + ':' + g.dataset.to)`, &ends)
	require.Equal(t, []string{"order-placed:inventory", "stock-failed:order", "order-cancelled:broker"}, ends)

	// A flow that was not recorded.
	do("unknown flow", chromedp.Navigate(srv.URL+"/ui/#/flow/order-404"), visible(`#flow-error`))
	require.Contains(t, text(`#flow-error`), "No flow order-404")

	b.noJSErrors()
}
