// Package payment is the shop's money service: per-user accounts and one
// payment per order, with the two saga endpoints that charge and refund.
//
// # Money accounting
//
// Amounts are integer cents. Every account keeps one invariant:
//
//	balance + reserved + spent == initial
//
// A saga charge moves the amount from balance to spent at once and records
// a CHARGED payment keyed by order id; its compensation refunds exactly that
// payment (balance += amount, spent -= amount, status REFUNDED). reserved
// stays 0 for sagas and is kept for TCC.
//
// # Endpoints
//
//	POST /payment/charge            saga action        {"order_id":1,"user_id":1,"amount":300}
//	POST /payment/charge/cancel     saga compensation  same payload; only order_id is used
//	GET  /payment/accounts          all accounts
//	GET  /payment/payments/{order}  the payment of one order
//
// Charges are refused (HTTP 409, a definite failure that makes the saga
// compensate) for user DeclinedUserID, the seeds' failure switch, and when
// the balance is too low. A refused charge is kept as a DECLINED payment for
// the record.
package payment
