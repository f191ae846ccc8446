package cart_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/cart"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	svc    *cart.Service
	store  *eventstore.Store
	orders *order.Client
	url    string // the cart service's HTTP API
}

func sqliteDB(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), filepath.Join(t.TempDir(), name), 0)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// newEnv starts the shop (saga pattern, no faults) and a cart service on
// commands (the event store's database) with its read model on SQLite.
func newEnv(t *testing.T, commands *sql.DB, d appdb.Dialect) *env {
	t.Helper()
	sh := shoptest.MustShop(t, shop.Config{})
	oc := &order.Client{URL: sh.OrderURL()}
	return newService(t, commands, d, oc)
}

func newService(t *testing.T, commands *sql.DB, d appdb.Dialect, orders cart.Orders) *env {
	t.Helper()
	return newServiceQ(t, commands, d, sqliteDB(t, "queries.db"), appdb.SQLite, orders)
}

func newServiceQ(t *testing.T, commands *sql.DB, d appdb.Dialect, queries *sql.DB, qd appdb.Dialect, orders cart.Orders) *env {
	t.Helper()
	store, err := eventstore.New(commands, eventstore.Config{Dialect: d})
	require.NoError(t, err)
	svc, err := cart.New(cart.Config{Store: store, QueryDB: queries, QueryDialect: qd,
		Orders: orders, Logger: shoptest.Logger(), ProjectionPoll: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, svc.Migrate(context.Background()))
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	e := &env{svc: svc, store: store, url: srv.URL}
	e.orders, _ = orders.(*order.Client)
	return e
}

// caughtUp applies events until the read model has none pending.
func caughtUp(t *testing.T, svc *cart.Service) {
	t.Helper()
	ctx := context.Background()
	for {
		n, err := svc.ReadModel().Runner().Step(ctx)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	lag, err := svc.ReadModel().Lag(ctx)
	require.NoError(t, err)
	require.Zero(t, lag.Events)
}

func do(t *testing.T, method, url, ifMatch, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b.String()
}

// The seeds' story (cart root 1: created, product 1 added, product 2
// added, product 2 removed, shipping info added), over HTTP; the checkout
// places one order through the saga, a second checkout returns it, and the
// read model shows it in the user's history and the product's sales.
func TestCart_SeedStoryAndCheckout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqliteDB(t, "commands.db"), appdb.SQLite)
	steps := []struct{ method, path, body string }{
		{"POST", "/carts", `{"id":"1","user_id":1}`},
		{"POST", "/carts/1/items", `{"product_id":1,"quantity":2}`},
		{"POST", "/carts/1/items", `{"product_id":2,"quantity":1}`},
		{"DELETE", "/carts/1/items/2", ``},
		{"PUT", "/carts/1/shipping", `{"name":"Kim","address":"1 Main St, Seoul"}`},
	}
	for i, s := range steps {
		code, h, body := do(t, s.method, e.url+s.path, "", s.body)
		require.Contains(t, []int{200, 201}, code, body)
		require.Equal(t, `"`+string(rune('1'+i))+`"`, h.Get("ETag"), "each command is one more version")
	}
	code, _, body := do(t, "GET", e.url+"/carts/1/events", "", "")
	require.Equal(t, 200, code, body)
	var sv cart.StreamView
	require.NoError(t, json.Unmarshal([]byte(body), &sv))
	var types []string
	for i, ev := range sv.Events {
		require.EqualValues(t, i+1, ev.Version)
		types = append(types, ev.Type)
	}
	require.Equal(t, []string{cart.CartCreated, cart.ItemAdded, cart.ItemAdded, cart.ItemRemoved, cart.ShippingInfoAdded}, types)
	require.JSONEq(t, `{"product_id":2}`, string(sv.Events[3].Data))

	code, _, body = do(t, "GET", e.url+"/carts/1", "", "")
	require.Equal(t, 200, code, body)
	var c cart.Cart
	require.NoError(t, json.Unmarshal([]byte(body), &c))
	require.Equal(t, []cart.Line{{ProductID: 1, Quantity: 2}}, c.Lines)
	require.Equal(t, cart.StatusOpen, c.Status)
	require.EqualValues(t, 5, c.Version)

	code, _, body = do(t, "POST", e.url+"/carts/1/checkout", `"5"`, "")
	require.Equal(t, 200, code, body)
	var first cart.CheckoutResult
	require.NoError(t, json.Unmarshal([]byte(body), &first))
	require.Equal(t, order.Completed, first.Order.Status)
	require.Equal(t, cart.StatusCompleted, first.Cart.Status)
	require.EqualValues(t, 200, first.Order.Total, "two Widgets at 100")

	code, _, body = do(t, "POST", e.url+"/carts/1/checkout", "", "")
	require.Equal(t, 200, code, body)
	var second cart.CheckoutResult
	require.NoError(t, json.Unmarshal([]byte(body), &second))
	require.Equal(t, first.Order.ID, second.Order.ID, "checkout is idempotent per cart")
	require.Equal(t, first.Cart.Version, second.Cart.Version, "and appends nothing the second time")
	all, err := e.orders.List(context.Background(), "")
	require.NoError(t, err)
	require.Len(t, all, 1)

	// Once checked out, the cart takes no more changes.
	code, h, body := do(t, "POST", e.url+"/carts/1/items", "", `{"product_id":1,"quantity":1}`)
	require.Equal(t, 409, code, body)
	require.Equal(t, "application/problem+json", h.Get("Content-Type"))
	require.Contains(t, body, cart.TypeCartState)

	caughtUp(t, e.svc)
	code, _, body = do(t, "GET", e.url+"/users/1/orders", "", "")
	require.Equal(t, 200, code, body)
	var hist []cart.HistoryRow
	require.NoError(t, json.Unmarshal([]byte(body), &hist))
	require.Equal(t, []cart.HistoryRow{{CartID: "1", UserID: 1, OrderID: first.Order.ID, Status: "COMPLETED", Total: 200, Version: first.Cart.Version}}, hist)
	code, _, body = do(t, "GET", e.url+"/sales", "", "")
	require.Equal(t, 200, code, body)
	require.JSONEq(t, `[{"product_id":1,"units":2,"revenue":200,"orders":1}]`, body)
	code, _, body = do(t, "GET", e.url+"/projections", "", "")
	require.Equal(t, 200, code, body)
	var lag []cart.LagView
	require.NoError(t, json.Unmarshal([]byte(body), &lag))
	require.Len(t, lag, 1)
	require.Equal(t, cart.ProjectionName, lag[0].Name)
	require.Zero(t, lag[0].Events)
	require.EqualValues(t, 8, lag[0].Checkpoint, "5 edits, checkout requested, checked out, settled")

	diffs, err := e.svc.ReadModel().Verify(context.Background())
	require.NoError(t, err)
	require.Empty(t, diffs)
}

// Bad input gets a problem+json 4xx naming the problem; a stale If-Match
// gets 409 and writes nothing.
func TestCart_HTTPErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqliteDB(t, "commands.db"), appdb.SQLite)
	code, _, body := do(t, "POST", e.url+"/carts", "", `{"id":"a","user_id":1}`)
	require.Equal(t, 201, code, body)
	for _, c := range []struct {
		method, path, ifMatch, body string
		status                      int
		says                        string
	}{
		{"POST", "/carts", "", `{"user_id":0}`, 400, "user_id"},
		{"POST", "/carts", "", `{"user_id":1,"color":"red"}`, 400, "malformed"},
		{"POST", "/carts", "", `{"id":"a/b","user_id":1}`, 400, "cart id"},
		{"POST", "/carts", "", `{"id":"a","user_id":1}`, 409, cart.TypeCartExists},
		{"GET", "/carts/nope", "", ``, 404, "not found"},
		{"GET", "/carts/nope/events", "", ``, 404, "not found"},
		{"POST", "/carts/nope/items", "", `{"product_id":1,"quantity":1}`, 404, "not found"},
		{"POST", "/carts/a/items", "", `{"product_id":1,"quantity":0}`, 400, "quantity"},
		{"POST", "/carts/a/items", "", `{"product_id":1,"quantity":"x"}`, 400, "malformed"},
		{"POST", "/carts/a/items", "abc", `{"product_id":1,"quantity":1}`, 400, "If-Match"},
		{"POST", "/carts/a/items", `"7"`, `{"product_id":1,"quantity":1}`, 409, cart.TypeVersionConflict},
		{"DELETE", "/carts/a/items/x", "", ``, 400, "product id"},
		{"DELETE", "/carts/a/items/3", "", ``, 409, "not in the cart"},
		{"PUT", "/carts/a/shipping", "", `{"name":"","address":"x"}`, 400, "shipping"},
		{"POST", "/carts/a/checkout", "", ``, 409, "empty"},
		{"GET", "/users/x/orders", "", ``, 400, "user id"},
	} {
		code, h, body := do(t, c.method, e.url+c.path, c.ifMatch, c.body)
		require.Equal(t, c.status, code, "%s %s: %s", c.method, c.path, body)
		require.Equal(t, "application/problem+json", h.Get("Content-Type"), "%s %s", c.method, c.path)
		require.Contains(t, body, c.says, "%s %s", c.method, c.path)
	}
	evs, err := e.svc.Events(context.Background(), "a")
	require.NoError(t, err)
	require.Len(t, evs, 1, "no refused command wrote an event")

	// With the right version the same command goes through.
	code, _, body = do(t, "POST", e.url+"/carts/a/items", `"1"`, `{"product_id":1,"quantity":1}`)
	require.Equal(t, 200, code, body)
	code, _, body = do(t, "POST", e.url+"/carts/a/checkout", "", ``)
	require.Equal(t, 409, code, body)
	require.Contains(t, body, "shipping")
}

// Many checkouts of one cart at once make one order, and every one of
// them returns it.
func TestCart_ConcurrentCheckoutsMakeOneOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, sqliteDB(t, "commands.db"), appdb.SQLite)
	fill(t, e.svc, "c", 4, cart.Line{ProductID: 2, Quantity: 3})
	var wg sync.WaitGroup
	ids := make([]int64, 8)
	for i := range ids {
		wg.Go(func() {
			_, o, err := e.svc.Checkout(ctx, "c", eventstore.AnyVersion)
			if assert.NoError(t, err) {
				ids[i] = o.ID
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	all, err := e.orders.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 1)
	c, err := e.svc.Load(ctx, "c")
	require.NoError(t, err)
	require.Equal(t, cart.StatusCompleted, c.Status)
	evs, err := e.svc.Events(ctx, "c")
	require.NoError(t, err)
	n := 0
	for _, ev := range evs {
		if ev.Type == cart.CheckedOut {
			n++
		}
	}
	require.Equal(t, 1, n, "one CheckedOut event")
}

func fill(t *testing.T, svc *cart.Service, id string, user int64, lines ...cart.Line) {
	t.Helper()
	ctx := context.Background()
	_, err := svc.Create(ctx, id, user)
	require.NoError(t, err)
	for _, l := range lines {
		_, err := svc.AddItem(ctx, id, eventstore.AnyVersion, l.ProductID, l.Quantity)
		require.NoError(t, err)
	}
	_, err = svc.AddShipping(ctx, id, eventstore.AnyVersion, cart.Shipping{Name: "N", Address: "A"})
	require.NoError(t, err)
}

// A checkout that cannot reach the order service leaves the cart
// CHECKING_OUT (502); checking out again later places the order once,
// under the key the first attempt fixed.
func TestCart_CheckoutResumesAfterOrderServiceOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sh := shoptest.MustShop(t, shop.Config{})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // connection refused from now on
	commands := sqliteDB(t, "commands.db")
	broken := newService(t, commands, appdb.SQLite, &order.Client{URL: down.URL})
	fill(t, broken.svc, "x", 1, cart.Line{ProductID: 1, Quantity: 1})
	code, _, body := do(t, "POST", broken.url+"/carts/x/checkout", "", "")
	require.Equal(t, http.StatusBadGateway, code, body)
	c, err := broken.svc.Load(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, cart.StatusCheckingOut, c.Status)
	key := c.CheckoutKey
	require.NotEmpty(t, key)

	oc := &order.Client{URL: sh.OrderURL()}
	healthy := newService(t, commands, appdb.SQLite, oc)
	c, o, err := healthy.svc.Checkout(ctx, "x", eventstore.AnyVersion)
	require.NoError(t, err)
	require.Equal(t, cart.StatusCompleted, c.Status)
	// The order service knows the key: placing it again is a replay.
	again, err := oc.Place(ctx, order.PlaceRequest{UserID: 1, Items: []order.Item{{ProductID: 1, Quantity: 1}}}, key, false)
	require.NoError(t, err)
	require.Equal(t, o.ID, again.ID)
}

// An order the order service refuses as invalid (an unknown product)
// reopens the cart (422); fixed, it checks out with a new key.
func TestCart_RejectedCheckoutReopensTheCart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, sqliteDB(t, "commands.db"), appdb.SQLite)
	fill(t, e.svc, "r", 1, cart.Line{ProductID: 1, Quantity: 1}, cart.Line{ProductID: 999, Quantity: 1})
	code, _, body := do(t, "POST", e.url+"/carts/r/checkout", "", "")
	require.Equal(t, http.StatusUnprocessableEntity, code, body)
	require.Contains(t, body, "unknown product 999")
	c, err := e.svc.Load(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, cart.StatusOpen, c.Status)
	require.Contains(t, c.Reason, "unknown product")
	_, err = e.svc.RemoveItem(ctx, "r", eventstore.AnyVersion, 999)
	require.NoError(t, err)
	c, o, err := e.svc.Checkout(ctx, "r", eventstore.AnyVersion)
	require.NoError(t, err)
	require.Equal(t, cart.StatusCompleted, c.Status)
	require.Equal(t, []order.Item{{ProductID: 1, Quantity: 1, Price: 100}}, o.Items)
}

// Commands on PostgreSQL, queries on SQLite: the projection runs in the
// background, the read model equals the fold of the events, and a rebuild
// from position 0 comes back to the same rows.
func TestCart_PostgresCommandsSQLiteQueries(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg, err := sql.Open("pgx", pgtest.DSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { pg.Close() })
	e := newEnv(t, pg, appdb.Postgres)
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(ctx) }()
	users := []int64{1, 3, 2, 4}
	for i, u := range users {
		id := "pg-" + string(rune('a'+i))
		fill(t, e.svc, id, u, cart.Line{ProductID: 1, Quantity: int64(i + 1)}, cart.Line{ProductID: 3, Quantity: 1})
		_, _, err := e.svc.Checkout(ctx, id, eventstore.AnyVersion)
		require.NoError(t, err)
	}
	waitCaughtUp(t, e.svc)
	diffs, err := e.svc.ReadModel().Verify(ctx)
	require.NoError(t, err)
	require.Empty(t, diffs)
	hist, err := e.svc.ReadModel().History(ctx, 2)
	require.NoError(t, err)
	require.Len(t, hist, 1)
	require.Equal(t, "CANCELLED", hist[0].Status, "user 2 is always declined")
	before, err := e.svc.ReadModel().Sales(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, before)

	require.NoError(t, e.svc.ReadModel().Runner().Rebuild(ctx))
	waitCaughtUp(t, e.svc)
	diffs, err = e.svc.ReadModel().Verify(ctx)
	require.NoError(t, err)
	require.Empty(t, diffs)
	after, err := e.svc.ReadModel().Sales(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after)
	cancel()
	require.NoError(t, <-done)
}

// The other way round: commands on SQLite, the read model on PostgreSQL.
func TestCart_SQLiteCommandsPostgresQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := sql.Open("pgx", pgtest.DSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { pg.Close() })
	sh := shoptest.MustShop(t, shop.Config{})
	e := newServiceQ(t, sqliteDB(t, "commands.db"), appdb.SQLite, pg, appdb.Postgres, &order.Client{URL: sh.OrderURL()})
	for i, u := range []int64{1, 2, 4} {
		id := "q-" + string(rune('a'+i))
		fill(t, e.svc, id, u, cart.Line{ProductID: 2, Quantity: 2}, cart.Line{ProductID: 1, Quantity: 1})
		_, _, err := e.svc.Checkout(ctx, id, eventstore.AnyVersion)
		require.NoError(t, err)
	}
	caughtUp(t, e.svc)
	diffs, err := e.svc.ReadModel().Verify(ctx)
	require.NoError(t, err)
	require.Empty(t, diffs)
	sales, err := e.svc.ReadModel().Sales(ctx)
	require.NoError(t, err)
	require.Equal(t, []cart.SalesRow{{ProductID: 1, Units: 2, Revenue: 200, Orders: 2}, {ProductID: 2, Units: 4, Revenue: 800, Orders: 2}}, sales,
		"users 1 and 4 paid; user 2 is declined")
	_, err = pg.Exec(`UPDATE cart_order_history SET total = total + 1 WHERE cart_id = 'q-a'`)
	require.NoError(t, err)
	diffs, err = e.svc.ReadModel().Verify(ctx)
	require.NoError(t, err)
	require.Len(t, diffs, 1)
	require.Contains(t, diffs[0], "cart q-a")
}

// waitCaughtUp waits for the running projection to reach the store's head.
func waitCaughtUp(t *testing.T, svc *cart.Service) {
	t.Helper()
	require.Eventually(t, func() bool {
		lag, err := svc.ReadModel().Lag(context.Background())
		require.NoError(t, err)
		return lag.Events == 0 && lag.Checkpoint > 0
	}, 30*time.Second, 10*time.Millisecond)
}

// Verify notices a read model that drifted from the events.
func TestReadModel_VerifyFindsDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := sqliteDB(t, "queries.db")
	sh := shoptest.MustShop(t, shop.Config{})
	store, err := eventstore.New(sqliteDB(t, "commands.db"), eventstore.Config{Dialect: appdb.SQLite})
	require.NoError(t, err)
	svc, err := cart.New(cart.Config{Store: store, QueryDB: q, QueryDialect: appdb.SQLite, Orders: &order.Client{URL: sh.OrderURL()}, Logger: shoptest.Logger()})
	require.NoError(t, err)
	require.NoError(t, svc.Migrate(ctx))
	fill(t, svc, "d", 1, cart.Line{ProductID: 2, Quantity: 2})
	_, _, err = svc.Checkout(ctx, "d", eventstore.AnyVersion)
	require.NoError(t, err)
	caughtUp(t, svc)
	_, err = q.Exec(`UPDATE cart_product_sales SET units = units + 1`)
	require.NoError(t, err)
	_, err = q.Exec(`INSERT INTO cart_order_history VALUES ('ghost', 1, 99, 'COMPLETED', 1, '', 1)`)
	require.NoError(t, err)
	diffs, err := svc.ReadModel().Verify(ctx)
	require.NoError(t, err)
	require.Len(t, diffs, 2, "%v", diffs)
	require.Contains(t, strings.Join(diffs, "\n"), "product 2")
	require.Contains(t, strings.Join(diffs, "\n"), "ghost")
}
