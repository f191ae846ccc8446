package cart_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/examples/shop/cart"
)

// FuzzFold: any event, well-formed or not, folds without a panic; an
// unknown type or a malformed payload is an error; and Fold is pure: the
// state it was given, lines included, is left as it was (Load may start
// from a snapshot, and Apply's contract says so).
func FuzzFold(f *testing.F) {
	f.Add(uint8(1), []byte(`{"product_id":1,"quantity":2}`))
	f.Add(uint8(2), []byte(`{"product_id":1}`))
	f.Add(uint8(3), []byte(`{"name":"n","address":"a"}`))
	f.Add(uint8(6), []byte(`{"order_id":1,"items":[{"product_id":1,"quantity":1,"price":5}]}`))
	f.Add(uint8(9), []byte(`{`))
	types := []string{cart.CartCreated, cart.ItemAdded, cart.ItemRemoved, cart.ShippingInfoAdded, cart.CheckoutRequested,
		cart.CheckoutRejected, cart.CheckedOut, cart.OrderSettled, "Unknown"}
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		base := cart.Cart{ID: "1", UserID: 1, Status: cart.StatusOpen, Lines: []cart.Line{{ProductID: 1, Quantity: 2}, {ProductID: 2, Quantity: 1}}, Version: 3}
		before := slices.Clone(base.Lines)
		e := eventstore.Event{Stream: "cart-1", Version: 4, Type: types[int(typ)%len(types)], Data: data}
		got, err := cart.Fold(base, e)
		require.Equal(t, before, base.Lines, "Fold changed the state it was given")
		if e.Type == "Unknown" {
			require.Error(t, err)
		}
		if err == nil {
			require.EqualValues(t, 4, got.Version)
			again, err := cart.Fold(base, e)
			require.NoError(t, err)
			require.Equal(t, got, again, "Fold is deterministic")
		}
	})
}
