// Package inventory is the shop's stock service: products with a price and
// stock counters, the two saga endpoints that sell and un-sell stock, and
// the three TCC endpoints that reserve, sell and release it.
//
// # Stock accounting
//
// Every product keeps four counters and one invariant:
//
//	available + reserved + sold == initial
//
// A saga deduct moves quantity from available to sold at once (no
// reservation). Every deduct writes one ledger row per product in the
// deductions table, keyed by order id.
//
// A TCC try moves quantity from available to reserved and writes one
// RESERVED row per product in the reservations table (primary key order id,
// product id); its confirm moves it on to sold (CONFIRMED), its cancel back
// to available (CANCELLED). So reserved is always the sum of the RESERVED
// rows, and sold that of the live deductions and CONFIRMED rows.
//
// # Endpoints
//
//	POST /inventory/deduct          saga action        {"order_id":1,"items":[{"product_id":1,"quantity":2}]}
//	POST /inventory/deduct/cancel   saga compensation  same payload; only order_id is used
//	POST /inventory/reserve         TCC try            same payload as a deduct
//	POST /inventory/reserve/confirm TCC confirm        RESERVED -> CONFIRMED (CONFIRMED: no-op)
//	POST /inventory/reserve/cancel  TCC cancel         RESERVED -> CANCELLED (none, CANCELLED: no-op)
//	GET  /inventory/products        all products
//	GET  /inventory/products/{id}   one product
//
// Every branch endpoint runs inside a participant.Barrier, so a retried call
// applies once, a compensation (cancel) that arrives before its action (try)
// does nothing, and an action that arrives after its compensation is
// refused. The TCC endpoints require their Dtx-Op (try, confirm, cancel), and
// refuse to confirm a cancelled reservation or cancel a confirmed one: the
// coordinator never asks for either.
//
// Compensations and confirms act on what the ledger (or the reservations)
// say was done for the order, never on what their payload says: a compensation must undo exactly what the
// action did, and the ledger is the only record of that.
package inventory
