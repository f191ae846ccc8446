package load

import (
	"context"
	"fmt"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/order"
)

// Orders lists orders by status (all when empty): the order service
// (*order.Service) or its HTTP client (*order.Client).
type Orders interface {
	List(ctx context.Context, status order.Status) ([]*order.Order, error)
}

// Unfinished lists PENDING orders and the transactions in st (if not nil)
// still running or compensating.
func Unfinished(ctx context.Context, orders Orders, st dtx.Store) []string {
	var out []string
	pending, err := orders.List(ctx, order.Pending)
	if err != nil {
		return []string{"cannot list orders: " + err.Error()}
	}
	seen := map[string]bool{}
	for _, o := range pending {
		seen[o.GID] = true
		out = append(out, fmt.Sprintf("order %d PENDING (%s, %s)", o.ID, o.Pattern, o.GID))
	}
	if st == nil {
		return out
	}
	for _, s := range []dtx.Status{dtx.StatusRunning, dtx.StatusCompensating} {
		txs, err := st.List(ctx, dtx.ListFilter{Status: s, Limit: 1000})
		if err != nil {
			return append(out, "cannot list transactions: "+err.Error())
		}
		for _, tx := range txs {
			if !seen[tx.GID] {
				out = append(out, fmt.Sprintf("transaction %s %s (lease %s)", tx.GID, tx.Status, tx.LeaseOwner))
			}
		}
	}
	return out
}

// CrossCheck checks each finished order that has a transaction (every
// pattern but choreography) against it in st: COMPLETED ⇔ succeeded,
// CANCELLED ⇔ failed. It returns the disagreements. each, if not nil, is
// called for every order checked; an error from it ends the check.
func CrossCheck(ctx context.Context, orders []*order.Order, st dtx.Store, each func(*order.Order) error) ([]string, error) {
	var out []string
	for _, o := range orders {
		if o.Pattern == order.PatternChoreography || o.Status == order.Pending {
			continue
		}
		tx, _, err := st.Get(ctx, o.GID)
		if err != nil {
			out = append(out, fmt.Sprintf("order %d %s: transaction %s: %v", o.ID, o.Status, o.GID, err))
			continue
		}
		want := dtx.StatusSucceeded
		if o.Status == order.Cancelled {
			want = dtx.StatusFailed
		}
		if tx.Status != want {
			out = append(out, fmt.Sprintf("order %d is %s but its transaction %s is %s", o.ID, o.Status, o.GID, tx.Status))
		}
		if each != nil {
			if err := each(o); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}
