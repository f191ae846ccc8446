// Package verify checks the shop's databases against the invariants a
// distributed transaction toolkit promises to keep:
//
//   - stock: per product available + reserved + sold == initial, none negative,
//     and sold equals the quantity in live (not cancelled) deduction rows;
//   - money: per account balance + reserved + spent == initial, none negative,
//     and spent equals the sum of CHARGED payments;
//   - every COMPLETED order has exactly its items deducted once, at the prices
//     it was charged for, and exactly one CHARGED payment of its total;
//   - every CANCELLED order has no effect left: no live deduction, no CHARGED
//     payment;
//   - no live deduction or CHARGED payment belongs to an unknown order.
//
// PENDING orders may be mid-saga and are only counted: whether one that
// stays PENDING is "stuck" is for the caller to decide.
//
// Check can run while sagas are in flight. It reads the order database
// first: an order is marked COMPLETED only after its effects committed, and
// CANCELLED only after they were undone, so effects read afterwards agree
// with the order states read before.
package verify
