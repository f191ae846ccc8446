// Package cart is the seeds' event-sourced shopping cart (seed 004: cart
// created, product 1 added, product 2 added, product 2 removed, shipping
// info added) with CQRS: its state is the fold of its events in an event
// store (package eventstore), its checkout places an order through the
// shop's order service, and a read model kept by a projection (package
// projection) answers "what did this user order" and "what sold".
//
// # Command side
//
// A cart is the stream "cart-<id>". Every command loads the cart by
// folding its events (Fold), checks the command against that state and
// appends the new events with the loaded version as the expected one.
// A client that sends the version it saw (If-Match) gets a 409 when the
// cart changed since; without it the service retries the race itself.
//
// Checkout is idempotent per cart, and safe against a crash at any point:
//
//	CheckoutRequested  freezes the cart and fixes the order's lines and
//	                   idempotency key ("cart-<id>-<version>")
//	CheckedOut         the order service placed the order (same key: one
//	                   order, however often it is retried)
//	OrderSettled       the order's final status, COMPLETED or CANCELLED
//
// A second checkout finds the order in the stream and returns it (after
// recording its outcome, when it has become final meanwhile). If the order
// service refuses the request itself (400, an unknown product),
// CheckoutRejected reopens the cart.
//
// # Query side
//
// ReadModel is a projection of every cart event into tables of a query
// database that may differ from the event store's (SQLite or PostgreSQL):
// cart_order_history (one row per checked-out cart: user, order, status,
// total), cart_order_lines and cart_product_sales (units, revenue and
// orders per product, counting completed orders only). Verify recomputes
// the read model by folding the store's events and compares it row by row.
//
// # HTTP
//
// Service.Handler serves the commands (POST /carts, POST
// /carts/{id}/items, DELETE /carts/{id}/items/{product}, PUT
// /carts/{id}/shipping, POST /carts/{id}/checkout) and the queries (GET
// /carts/{id}, GET /carts/{id}/events, GET /users/{id}/orders, GET /sales,
// GET /projections for the read model's lag). Errors are problem+json.
package cart
