// Package inventory is the shop's stock service: products with a price and
// stock counters, and the two saga endpoints that sell and un-sell stock.
//
// # Stock accounting
//
// Every product keeps four counters and one invariant:
//
//	available + reserved + sold == initial
//
// A saga deduct moves quantity from available to sold at once (no
// reservation; reserved stays 0 and is kept for TCC). Every deduct writes
// one ledger row per product in the deductions table, keyed by order id.
//
// # Endpoints
//
//	POST /inventory/deduct          saga action        {"order_id":1,"items":[{"product_id":1,"quantity":2}]}
//	POST /inventory/deduct/cancel   saga compensation  same payload; only order_id is used
//	GET  /inventory/products        all products
//	GET  /inventory/products/{id}   one product
//
// Both saga endpoints run inside a participant.Barrier, so a retried call
// applies once, a compensation that arrives before its action does nothing,
// and an action that arrives after its compensation is refused.
//
// The compensation restores what the ledger says was deducted for the order,
// never what its payload says: a compensation must undo exactly what the
// action did, and the ledger is the only record of that.
package inventory
