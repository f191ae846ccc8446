// Package payment is the shop's money service: per-user accounts and one
// payment per order, with the two saga endpoints that charge and refund and
// the three TCC endpoints that hold, spend and release money.
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
// stays 0 for sagas.
//
// A TCC try holds the amount (balance -= amount, reserved += amount) and
// records the payment RESERVED; its confirm spends it (reserved -= amount,
// spent += amount, CHARGED), its cancel releases it (reserved -= amount,
// balance += amount, CANCELLED). Confirm and cancel act on the stored
// payment, never on their payload. So reserved is always the sum of the
// RESERVED payments and spent the sum of the CHARGED ones.
//
// # Endpoints
//
//	POST /payment/charge            saga action        {"order_id":1,"user_id":1,"amount":300}
//	POST /payment/charge/cancel     saga compensation  same payload; only order_id is used
//	POST /payment/reserve           TCC try            same payload as a charge
//	POST /payment/reserve/confirm   TCC confirm        RESERVED -> CHARGED (CHARGED: no-op)
//	POST /payment/reserve/cancel    TCC cancel         RESERVED -> CANCELLED (none, DECLINED, CANCELLED: no-op)
//	GET  /payment/accounts          all accounts
//	GET  /payment/payments/{order}  the payment of one order
//
// Charges are refused (HTTP 409, a definite failure that makes the saga
// compensate) for user DeclinedUserID, the seeds' failure switch, and when
// the balance is too low. A refused charge is kept as a DECLINED payment for
// the record. The same goes for a TCC try.
//
// Every branch endpoint runs inside a participant.Barrier. The TCC endpoints
// require their Dtx-Op (try, confirm, cancel): a cancel that arrives before
// its try records a null cancel and the late try is refused (HTTP 409), and
// the guards refuse to confirm a cancelled payment or cancel a charged one
// (the coordinator never asks for either).
package payment
