// Package pgxbarrier runs the participant barrier (participant.Barrier) on
// native pgx transactions, for participants that use pgx or pgxpool rather
// than database/sql. The semantics are exactly those of Barrier.Do: the
// same table, the same rows, and the same outcomes (duplicate, null
// compensation, participant.ErrHanging, rollback on error), so a service
// may mix both bindings on one database.
//
// Typed is participant.Typed on pgx: a typed handler func(ctx, pgx.Tx, Req)
// (Resp, error) served behind the barrier, its body decoded and its
// response encoded by the SDK, for participant.Handler or
// brokertransport.Serve.
package pgxbarrier
