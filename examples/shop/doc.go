// Package shop runs dtx's reference application: three services, each with
// its own database, whose orders are fulfilled by sagas or, with
// Config.Pattern = order.PatternTCC, by TCC transactions (reserve stock and
// money, then confirm both or cancel both). With order.PatternSagaAsync the
// saga's branch calls travel as commands and replies over Config.Broker.
//
//	order      orders and their items; places orders, submits the saga,
//	           and owns the saga's first (cancel) and last (complete) steps
//	inventory  products: price and stock (available, reserved, sold)
//	payment    accounts (balance, reserved, spent) and payments
//
// Start opens the three databases (SQLite files in Config.Dir, or Postgres),
// creates the tables, seeds the fixtures into empty databases, and serves
// each service on its own loopback port:
//
//	s, err := shop.Start(ctx, shop.Config{Dir: dir, CoordinatorURL: "http://127.0.0.1:8480"})
//	...
//	defer s.Close(ctx)
//	o, err := s.PlaceOrder(ctx, 1, []order.Item{{ProductID: 1, Quantity: 2}}, "key-1", true)
//	report, err := s.Verify(ctx) // the invariants, see package verify
//
// Faults can be injected per service (package faults) to watch retries,
// compensations and the participant barrier at work.
//
// # Fixtures
//
// DefaultProducts and DefaultAccounts give a few products (one scarce, one
// sold out) and a few users. User 2 (payment.DeclinedUserID) is always
// declined and user 3 can only afford a few orders, so both failure paths of
// the saga are easy to reach.
package shop
