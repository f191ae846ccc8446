package verify

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Report is the result of Check.
type Report struct {
	Orders    int `json:"orders"`
	Completed int `json:"completed"`
	Cancelled int `json:"cancelled"`
	Pending   int `json:"pending"`
	// PendingIDs lists the PENDING orders.
	PendingIDs []int64 `json:"pending_ids,omitempty"`
	// Violations describes each broken invariant, naming the rows involved.
	Violations []string `json:"violations,omitempty"`
}

// OK reports whether no invariant is broken.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// String summarises the report on one line, plus one line per violation.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d orders: %d completed, %d cancelled, %d pending; %d violations",
		r.Orders, r.Completed, r.Cancelled, r.Pending, len(r.Violations))
	for _, v := range r.Violations {
		b.WriteString("\n  " + v)
	}
	return b.String()
}

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

type order struct {
	id, userID, total int64
	status            string
	items             map[int64]int64 // product id -> quantity
}

type deduction struct {
	productID, quantity, price int64
	live                       bool
}

// reservation is a TCC stock reservation.
type reservation struct {
	productID, quantity, price int64
	status                     string
}

type payment struct {
	userID, amount int64
	status         string
}

// Check reads the three shop databases and reports every broken invariant.
// An error means a database could not be read, not that an invariant broke.
func Check(ctx context.Context, orderDB, inventoryDB, paymentDB *sql.DB) (*Report, error) {
	// Order database first: see the package comment.
	orders, err := readOrders(ctx, orderDB)
	if err != nil {
		return nil, err
	}
	r := &Report{Orders: len(orders)}
	if err := checkInventory(ctx, inventoryDB, orders, r); err != nil {
		return nil, err
	}
	if err := checkPayment(ctx, paymentDB, orders, r); err != nil {
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		switch orders[id].status {
		case "COMPLETED":
			r.Completed++
		case "CANCELLED":
			r.Cancelled++
		case "PENDING":
			r.Pending++
			r.PendingIDs = append(r.PendingIDs, id)
		default:
			r.violate("order %d: unknown status %q", id, orders[id].status)
		}
	}
	return r, nil
}

// snapshot runs fn in a read-only transaction, so that related tables are
// read at one point in time.
func snapshot(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

func readOrders(ctx context.Context, db *sql.DB) (map[int64]*order, error) {
	orders := map[int64]*order{}
	err := snapshot(ctx, db, func(tx *sql.Tx) error {
		err := eachRow(ctx, tx, `SELECT id, user_id, total, status FROM orders`, func(scan func(...any) error) error {
			o := &order{items: map[int64]int64{}}
			if err := scan(&o.id, &o.userID, &o.total, &o.status); err != nil {
				return err
			}
			orders[o.id] = o
			return nil
		})
		if err != nil {
			return err
		}
		return eachRow(ctx, tx, `SELECT order_id, product_id, quantity FROM order_items`, func(scan func(...any) error) error {
			var orderID, productID, qty int64
			if err := scan(&orderID, &productID, &qty); err != nil {
				return err
			}
			if o := orders[orderID]; o != nil {
				o.items[productID] += qty
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("verify: read orders: %w", err)
	}
	return orders, nil
}

func checkInventory(ctx context.Context, db *sql.DB, orders map[int64]*order, r *Report) error {
	type product struct{ available, reserved, sold, initial int64 }
	products := map[int64]product{}
	ledger := map[int64][]deduction{}     // by order id
	reserved := map[int64][]reservation{} // by order id
	err := snapshot(ctx, db, func(tx *sql.Tx) error {
		err := eachRow(ctx, tx, `SELECT id, available, reserved, sold, initial FROM products`, func(scan func(...any) error) error {
			var id int64
			var p product
			if err := scan(&id, &p.available, &p.reserved, &p.sold, &p.initial); err != nil {
				return err
			}
			products[id] = p
			return nil
		})
		if err != nil {
			return err
		}
		err = eachRow(ctx, tx, `SELECT order_id, product_id, quantity, price, status FROM deductions`, func(scan func(...any) error) error {
			var orderID int64
			var d deduction
			var status string
			if err := scan(&orderID, &d.productID, &d.quantity, &d.price, &status); err != nil {
				return err
			}
			d.live = status == "DEDUCTED"
			ledger[orderID] = append(ledger[orderID], d)
			return nil
		})
		if err != nil {
			return err
		}
		return eachRow(ctx, tx, `SELECT order_id, product_id, quantity, price, status FROM reservations`, func(scan func(...any) error) error {
			var orderID int64
			var rv reservation
			if err := scan(&orderID, &rv.productID, &rv.quantity, &rv.price, &rv.status); err != nil {
				return err
			}
			reserved[orderID] = append(reserved[orderID], rv)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("verify: read inventory: %w", err)
	}

	liveSold := map[int64]int64{}
	for orderID, ds := range ledger {
		for _, d := range ds {
			if d.live {
				liveSold[d.productID] += d.quantity
			}
		}
		if orders[orderID] == nil && slices.ContainsFunc(ds, func(d deduction) bool { return d.live }) {
			r.violate("deductions: order %d does not exist but has live deductions", orderID)
		}
	}
	confirmedSold := map[int64]int64{} // by product id
	held := map[int64]int64{}          // RESERVED quantity by product id
	for _, orderID := range slices.Sorted(maps.Keys(reserved)) {
		live := false
		for _, rv := range reserved[orderID] {
			switch rv.status {
			case "CONFIRMED":
				confirmedSold[rv.productID] += rv.quantity
				live = true
			case "RESERVED":
				held[rv.productID] += rv.quantity
				live = true
			case "CANCELLED":
			default:
				r.violate("reservations: order %d product %d: unknown status %q", orderID, rv.productID, rv.status)
			}
		}
		if orders[orderID] == nil && live {
			r.violate("reservations: order %d does not exist but has live reservations", orderID)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(products)) {
		p := products[id]
		if p.available < 0 || p.reserved < 0 || p.sold < 0 {
			r.violate("product %d: negative counter (available %d, reserved %d, sold %d)", id, p.available, p.reserved, p.sold)
		}
		if sum := p.available + p.reserved + p.sold; sum != p.initial {
			r.violate("product %d: available %d + reserved %d + sold %d = %d, want initial %d",
				id, p.available, p.reserved, p.sold, sum, p.initial)
		}
		if p.sold != liveSold[id]+confirmedSold[id] {
			r.violate("product %d: sold %d but live deductions total %d and confirmed reservations %d",
				id, p.sold, liveSold[id], confirmedSold[id])
		}
		if p.reserved != held[id] {
			r.violate("product %d: reserved %d but RESERVED reservations total %d", id, p.reserved, held[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(liveSold)) {
		if _, ok := products[id]; !ok {
			r.violate("deductions: product %d does not exist", id)
		}
	}
	reservedProducts := maps.Clone(confirmedSold)
	maps.Copy(reservedProducts, held)
	for _, id := range slices.Sorted(maps.Keys(reservedProducts)) {
		if _, ok := products[id]; !ok {
			r.violate("reservations: product %d does not exist", id)
		}
	}

	for _, id := range slices.Sorted(maps.Keys(orders)) {
		o := orders[id]
		live := map[int64]int64{}
		var value int64
		for _, d := range ledger[id] {
			if d.live {
				live[d.productID] += d.quantity
				value += d.quantity * d.price
			}
		}
		// A confirmed reservation is stock sold, like a live deduction.
		for _, rv := range reserved[id] {
			if rv.status == "CONFIRMED" {
				live[rv.productID] += rv.quantity
				value += rv.quantity * rv.price
			}
		}
		// Stock still held for a finished order: a confirm or cancel that
		// has not (yet) run. Only a PENDING order may hold stock.
		if o.status != "PENDING" {
			for _, rv := range reserved[id] {
				if rv.status == "RESERVED" {
					r.violate("order %d %s: product %d still RESERVED (%d)", id, o.status, rv.productID, rv.quantity)
				}
			}
		}
		switch o.status {
		case "COMPLETED":
			for _, pid := range slices.Sorted(maps.Keys(o.items)) {
				if live[pid] != o.items[pid] {
					r.violate("order %d COMPLETED: product %d deducted %d, ordered %d", id, pid, live[pid], o.items[pid])
				}
			}
			for _, pid := range slices.Sorted(maps.Keys(live)) {
				if _, ok := o.items[pid]; !ok {
					r.violate("order %d COMPLETED: product %d deducted %d, not ordered", id, pid, live[pid])
				}
			}
			if value != o.total {
				r.violate("order %d COMPLETED: goods deducted are worth %d, order total is %d", id, value, o.total)
			}
		case "CANCELLED":
			for _, pid := range slices.Sorted(maps.Keys(live)) {
				r.violate("order %d CANCELLED: product %d still deducted (%d)", id, pid, live[pid])
			}
		}
	}
	return nil
}

func checkPayment(ctx context.Context, db *sql.DB, orders map[int64]*order, r *Report) error {
	type account struct{ balance, reserved, spent, initial int64 }
	accounts := map[int64]account{}
	payments := map[int64]payment{} // by order id (unique)
	err := snapshot(ctx, db, func(tx *sql.Tx) error {
		err := eachRow(ctx, tx, `SELECT user_id, balance, reserved, spent, initial FROM accounts`, func(scan func(...any) error) error {
			var id int64
			var a account
			if err := scan(&id, &a.balance, &a.reserved, &a.spent, &a.initial); err != nil {
				return err
			}
			accounts[id] = a
			return nil
		})
		if err != nil {
			return err
		}
		return eachRow(ctx, tx, `SELECT order_id, user_id, amount, status FROM payments`, func(scan func(...any) error) error {
			var orderID int64
			var p payment
			if err := scan(&orderID, &p.userID, &p.amount, &p.status); err != nil {
				return err
			}
			payments[orderID] = p
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("verify: read payment: %w", err)
	}

	charged := map[int64]int64{} // by user id
	holding := map[int64]int64{} // RESERVED amounts by user id
	for _, orderID := range slices.Sorted(maps.Keys(payments)) {
		p := payments[orderID]
		if p.status == "RESERVED" {
			holding[p.userID] += p.amount
			if o := orders[orderID]; o == nil {
				r.violate("payments: order %d does not exist but has %d RESERVED", orderID, p.amount)
			} else if o.status != "PENDING" {
				r.violate("order %d %s: payment of %d still RESERVED", orderID, o.status, p.amount)
			}
			continue
		}
		if p.status != "CHARGED" {
			continue
		}
		charged[p.userID] += p.amount
		if orders[orderID] == nil {
			r.violate("payments: order %d does not exist but is CHARGED %d", orderID, p.amount)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(accounts)) {
		a := accounts[id]
		if a.balance < 0 || a.reserved < 0 || a.spent < 0 {
			r.violate("account %d: negative counter (balance %d, reserved %d, spent %d)", id, a.balance, a.reserved, a.spent)
		}
		if sum := a.balance + a.reserved + a.spent; sum != a.initial {
			r.violate("account %d: balance %d + reserved %d + spent %d = %d, want initial %d",
				id, a.balance, a.reserved, a.spent, sum, a.initial)
		}
		if a.spent != charged[id] {
			r.violate("account %d: spent %d but CHARGED payments total %d", id, a.spent, charged[id])
		}
		if a.reserved != holding[id] {
			r.violate("account %d: reserved %d but RESERVED payments total %d", id, a.reserved, holding[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(charged)) {
		if _, ok := accounts[id]; !ok {
			r.violate("payments: user %d has CHARGED payments but no account", id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(holding)) {
		if _, ok := accounts[id]; !ok {
			r.violate("payments: user %d has RESERVED payments but no account", id)
		}
	}

	for _, id := range slices.Sorted(maps.Keys(orders)) {
		o := orders[id]
		p, ok := payments[id]
		switch o.status {
		case "COMPLETED":
			switch {
			case !ok || p.status != "CHARGED":
				r.violate("order %d COMPLETED: no CHARGED payment (payment status %q)", id, p.status)
			case p.amount != o.total:
				r.violate("order %d COMPLETED: charged %d, order total is %d", id, p.amount, o.total)
			case p.userID != o.userID:
				r.violate("order %d COMPLETED: charged user %d, order is user %d's", id, p.userID, o.userID)
			}
		case "CANCELLED":
			if ok && p.status == "CHARGED" {
				r.violate("order %d CANCELLED: payment still CHARGED (%d)", id, p.amount)
			}
		}
	}
	return nil
}

// eachRow runs query and calls fn with a scanner for each row.
func eachRow(ctx context.Context, tx *sql.Tx, query string, fn func(scan func(...any) error) error) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}
