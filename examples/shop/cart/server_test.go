package cart_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/cart"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
)

// The cart service as `dtx cart serve` runs it (files in a directory, the
// projection running), read back as `dtx cart show` prints it: the
// stream's events in order and the projection's lag, caught up.
func TestServer_ShowStreamAndLag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sh := shoptest.MustShop(t, shop.Config{})
	s, err := cart.Start(ctx, cart.ServerConfig{Dir: t.TempDir(), OrderURL: sh.OrderURL(), Logger: shoptest.Logger()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	c := &cart.Client{URL: s.URL()}
	_, err = c.Create(ctx, "1", 1)
	require.NoError(t, err)
	_, err = c.AddItem(ctx, "1", 1, 1)
	require.NoError(t, err)
	_, err = c.AddItem(ctx, "1", 2, 1)
	require.NoError(t, err)
	_, err = c.AddShipping(ctx, "1", cart.Shipping{Name: "N", Address: "A"})
	require.NoError(t, err)
	got, err := c.RemoveItem(ctx, "1", 2)
	require.NoError(t, err)
	require.Equal(t, []cart.Line{{ProductID: 1, Quantity: 1}}, got.Lines)
	first, err := c.Checkout(ctx, "1")
	require.NoError(t, err)
	second, err := c.Checkout(ctx, "1")
	require.NoError(t, err)
	require.Equal(t, first.Order.ID, second.Order.ID)
	got, err = c.Get(ctx, "1")
	require.NoError(t, err)
	require.Equal(t, cart.StatusCompleted, got.Status)
	_, err = c.RemoveItem(ctx, "1", 1)
	var he *cart.HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, 409, he.Status)
	waitCaughtUp(t, s.Service)

	sv, err := c.Stream(ctx, "1")
	require.NoError(t, err)
	lags, err := c.Projections(ctx)
	require.NoError(t, err)
	var out strings.Builder
	cart.WriteStream(&out, sv, lags)
	text := out.String()
	require.Contains(t, text, "stream cart-1, version 8\n")
	order := []string{cart.CartCreated, cart.ItemAdded, cart.ItemAdded, cart.ShippingInfoAdded, cart.ItemRemoved, cart.CheckoutRequested, cart.CheckedOut, cart.OrderSettled}
	at := 0
	for _, typ := range order {
		i := strings.Index(text[at:], typ)
		require.GreaterOrEqual(t, i, 0, "%s after offset %d in\n%s", typ, at, text)
		at += i + len(typ)
	}
	require.Contains(t, text, "projection cart-orders: checkpoint 8 of 8, 0 events behind")

	_, err = c.Stream(ctx, "nope")
	require.ErrorContains(t, err, "404")
	_, err = cart.Start(ctx, cart.ServerConfig{Dir: t.TempDir(), OrderURL: sh.OrderURL(), EventsDSN: "mysql://x"})
	require.ErrorContains(t, err, "postgres://")
}
