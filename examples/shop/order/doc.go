// Package order is the shop's order service and the saga that fulfils an
// order across the inventory and payment services.
//
// # Placing an order
//
//	POST /orders            {"user_id":1,"items":[{"product_id":1,"quantity":2}]}
//	     Idempotency-Key:   optional; a retry with the same key returns the first order
//	     ?wait=true         optional; answer once the saga has finished
//
// The service validates the request, prices it from the inventory's price
// list (never from the client), stores the order as PENDING in one local
// transaction, and submits this saga, gid "order-<id>", to the coordinator:
//
//	step       action                      compensation
//	0 order    -                           POST /orders/saga/cancel (PENDING -> CANCELLED)
//	1 inventory POST /inventory/deduct     POST /inventory/deduct/cancel
//	2 payment  POST /payment/charge        POST /payment/charge/cancel
//	3 complete POST /orders/saga/complete  - (PENDING -> COMPLETED; runs only after
//	                                          steps 1 and 2 succeeded, retried until done)
//
// A definite failure in step 1 or 2 (no stock, payment declined) makes the
// coordinator compensate the steps that ran, in reverse, ending with step 0
// which cancels the order. Both status changes are guarded: only a PENDING
// order moves, so a late or repeated call can never flip a finished order.
//
// # TCC
//
// With Config.Pattern = PatternTCC, new orders are fulfilled by a TCC
// transaction instead (same gid, payloads and timeouts), see TCCSpec:
//
//	participant  try                 confirm                       cancel
//	order        -                   /orders/saga/complete         /orders/saga/cancel
//	inventory    /inventory/reserve  /inventory/reserve/confirm    /inventory/reserve/cancel
//	payment      /payment/reserve    /payment/reserve/confirm      /payment/reserve/cancel
//
// The order's two steps take Dtx-Op confirm and cancel as well as action and
// compensate. Each order stores its pattern, so a resubmission (by Run or an
// Idempotency-Key replay) uses the pattern the order was placed with.
//
// # Saga over a broker
//
// With Config.Pattern = PatternSagaAsync, the saga is SagaSpec's with
// broker://<topic> step URLs, the topic being the step's path without its
// leading '/' and with '-' for '/' (SagaTopic: "broker://inventory-deduct",
// "broker://orders-saga-complete", ...). The coordinator (with a
// brokertransport.Transport in its transport.Schemes table) sends each
// branch call as a command message, and each service answers the commands
// of its topics with the same handlers as over HTTP (BranchHandlers,
// brokertransport.Serve; package shop subscribes them).
//
// Answers: 201 with the order; 200 when an Idempotency-Key replays an earlier
// order; 202 when the order is stored but the saga could not be submitted
// (or, with ?wait=true, has not finished in time, with a Location to poll).
// With ?wait=true a CANCELLED order is a 409 problem of type
// TypeOrderRefused carrying the reason and the order (Refusal). Invalid
// input is a 400 problem, a key reused with a different body a 409, an
// order database that does not answer a 503 with the reason.
//
// # The seeds' endpoints
//
//	POST /order        {"orderItems":[{"productId":1,"quantity":2}]} -> {"orderId": <draft id>}
//	POST /order/place  {"orderId": <draft id>}  places it (the draft id is its idempotency key)
//	POST /saga/order   {"userId","productId","quantity"} -> SUCCESS | FAILED_INVENTORY | FAILED_PAYMENT | FAILED_ORDER | PENDING
//
// [003]'s create-then-place and [001]'s saga endpoint, aliases of Place
// (see seed.go, SagaResult). With Config.Lock, /order/place holds a lock on
// "order:{id}" while it runs.
//
// # No order without a saga
//
// If the coordinator is unreachable the order stays PENDING. Service.Run
// periodically resubmits PENDING orders that have not been (re)submitted
// recently. The gid and content are deterministic, so a resubmission of a
// saga the coordinator already holds is accepted as a no-op.
//
// # Reads
//
//	GET /orders/{id}
//	GET /orders?status=PENDING|COMPLETED|CANCELLED
package order
