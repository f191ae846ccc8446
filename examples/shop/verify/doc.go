// Package verify checks the shop's databases against the invariants a
// distributed transaction toolkit promises to keep:
//
//   - stock: per product available + reserved + sold == initial, none negative,
//     sold equals the quantity in live (not cancelled) deduction rows plus
//     CONFIRMED reservations, and reserved equals the quantity in RESERVED
//     reservations;
//   - money: per account balance + reserved + spent == initial, none negative,
//     spent equals the sum of CHARGED payments, and reserved the sum of
//     RESERVED ones;
//   - every COMPLETED order has exactly its items sold once (deducted by a
//     saga or a CONFIRMED reservation of TCC), at the prices it was charged
//     for, and exactly one CHARGED payment of its total;
//   - every CANCELLED order has no effect left: no live deduction, no
//     CONFIRMED reservation, no CHARGED payment;
//   - only a PENDING order may hold stock or money: a RESERVED reservation or
//     payment of a COMPLETED or CANCELLED order is reported, naming it;
//   - no live deduction, live reservation, CHARGED or RESERVED payment
//     belongs to an unknown order.
//
// The checks hold for either pattern (saga or TCC), and for a mix.
//
// PENDING orders may be mid-transaction and are only counted: whether one
// that stays PENDING is "stuck" is for the caller to decide.
//
// Check reads the order database first, then the others. For sagas that
// makes it safe while transactions are in flight: an order is marked
// COMPLETED only after its effects committed, and CANCELLED only after they
// were undone. A TCC transaction confirms (or cancels) the order and the
// reservations in parallel, so a finished TCC order can briefly show a
// RESERVED row: check TCC runs at quiescence, once the coordinator has
// finished every transaction.
package verify
