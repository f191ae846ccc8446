package cart

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// Event types of a cart's stream, in the order a cart usually sees them.
const (
	// CartCreated opens a cart for a user (CreatedData).
	CartCreated = "CartCreated"
	// ItemAdded adds quantity of a product; a product already in the cart
	// gets the quantities summed (ItemData).
	ItemAdded = "ItemAdded"
	// ItemRemoved removes a product's line (ItemData, quantity unused).
	ItemRemoved = "ItemRemoved"
	// ShippingInfoAdded sets where the order goes (Shipping).
	ShippingInfoAdded = "ShippingInfoAdded"
	// CheckoutRequested freezes the cart for checkout and fixes the
	// order's idempotency key (CheckoutData).
	CheckoutRequested = "CheckoutRequested"
	// CheckoutRejected reopens a cart whose order the order service
	// refused as invalid (RejectedData).
	CheckoutRejected = "CheckoutRejected"
	// CheckedOut records the placed order (CheckedOutData).
	CheckedOut = "CheckedOut"
	// OrderSettled records the order's final status (SettledData).
	OrderSettled = "OrderSettled"
)

// Status is where a cart is in its life.
type Status string

// Cart states. A cart is StatusOpen until checkout, StatusCheckingOut until
// the order is placed, StatusCheckedOut while the order is pending, then
// StatusCompleted or StatusCancelled with the order.
const (
	StatusOpen        Status = "OPEN"
	StatusCheckingOut Status = "CHECKING_OUT"
	StatusCheckedOut  Status = "CHECKED_OUT"
	StatusCompleted   Status = "COMPLETED"
	StatusCancelled   Status = "CANCELLED"
)

// Line is a product in the cart.
type Line struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// Shipping is where an order goes.
type Shipping struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Event payloads.
type (
	// CreatedData is the payload of CartCreated.
	CreatedData struct {
		CartID string `json:"cart_id"`
		UserID int64  `json:"user_id"`
	}
	// ItemData is the payload of ItemAdded and ItemRemoved.
	ItemData struct {
		ProductID int64 `json:"product_id"`
		Quantity  int64 `json:"quantity,omitempty"`
	}
	// CheckoutData is the payload of CheckoutRequested.
	CheckoutData struct {
		// Key is the order's idempotency key.
		Key   string `json:"idempotency_key"`
		Lines []Line `json:"lines"`
	}
	// RejectedData is the payload of CheckoutRejected.
	RejectedData struct {
		Reason string `json:"reason"`
	}
	// CheckedOutData is the payload of CheckedOut: the order as placed,
	// with the unit prices the order service set.
	CheckedOutData struct {
		OrderID int64        `json:"order_id"`
		UserID  int64        `json:"user_id"`
		Total   int64        `json:"total"`
		Items   []order.Item `json:"items"`
	}
	// SettledData is the payload of OrderSettled.
	SettledData struct {
		OrderID int64  `json:"order_id"`
		Status  Status `json:"status"`
		Reason  string `json:"reason,omitempty"`
	}
)

// Cart is a cart's state: the fold of its events.
type Cart struct {
	ID       string    `json:"id"`
	UserID   int64     `json:"user_id"`
	Status   Status    `json:"status"`
	Lines    []Line    `json:"lines"`
	Shipping *Shipping `json:"shipping,omitempty"`
	// CheckoutKey is the idempotency key of the order being placed.
	CheckoutKey string `json:"checkout_key,omitempty"`
	// The order, once placed.
	OrderID int64        `json:"order_id,omitempty"`
	Total   int64        `json:"total,omitempty"`
	Items   []order.Item `json:"items,omitempty"`
	// Reason says why the order was cancelled or the checkout rejected.
	Reason string `json:"reason,omitempty"`
	// Version is the stream's version the state was folded up to.
	Version int64 `json:"version"`
}

// Exists reports whether the cart has been created.
func (c Cart) Exists() bool { return c.Status != "" }

// Fold applies one event to a cart's state (eventstore.Apply). It is pure:
// the state's slices are copied before they change.
func Fold(c Cart, e eventstore.Event) (Cart, error) {
	c.Version = e.Version
	switch e.Type {
	case CartCreated:
		var d CreatedData
		if err := decode(e, &d); err != nil {
			return c, err
		}
		c.ID, c.UserID, c.Status, c.Lines = d.CartID, d.UserID, StatusOpen, []Line{}
	case ItemAdded:
		var d ItemData
		if err := decode(e, &d); err != nil {
			return c, err
		}
		lines := slices.Clone(c.Lines)
		i := slices.IndexFunc(lines, func(l Line) bool { return l.ProductID == d.ProductID })
		if i >= 0 {
			lines[i].Quantity += d.Quantity
		} else {
			lines = append(lines, Line{d.ProductID, d.Quantity})
		}
		c.Lines = lines
	case ItemRemoved:
		var d ItemData
		if err := decode(e, &d); err != nil {
			return c, err
		}
		c.Lines = slices.DeleteFunc(slices.Clone(c.Lines), func(l Line) bool { return l.ProductID == d.ProductID })
	case ShippingInfoAdded:
		var d Shipping
		if err := decode(e, &d); err != nil {
			return c, err
		}
		c.Shipping = &d
	case CheckoutRequested:
		var d CheckoutData
		if err := decode(e, &d); err != nil {
			return c, err
		}
		c.Status, c.CheckoutKey, c.Reason = StatusCheckingOut, d.Key, ""
	case CheckoutRejected:
		var d RejectedData
		if err := decode(e, &d); err != nil {
			return c, err
		}
		c.Status, c.CheckoutKey, c.Reason = StatusOpen, "", d.Reason
	case CheckedOut:
		var d CheckedOutData
		if err := decode(e, &d); err != nil {
			return c, err
		}
		c.Status, c.OrderID, c.Total, c.Items = StatusCheckedOut, d.OrderID, d.Total, d.Items
	case OrderSettled:
		var d SettledData
		if err := decode(e, &d); err != nil {
			return c, err
		}
		c.Status, c.Reason = d.Status, d.Reason
	default:
		return c, fmt.Errorf("cart: unknown event type %q", e.Type)
	}
	return c, nil
}

func decode(e eventstore.Event, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("cart: %s at %s@%d: %w", e.Type, e.Stream, e.Version, err)
	}
	return nil
}

// StreamPrefix starts the stream name of every cart.
const StreamPrefix = "cart-"

// Stream is the event stream of cart id.
func Stream(id string) string { return StreamPrefix + id }
