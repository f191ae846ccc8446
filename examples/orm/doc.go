// Package orm is the home of two participants whose business writes go
// through an ORM inside the dtx barrier's transaction: gormwallet (gorm)
// and entwallet (ent). Both are typed handlers (participant.Typed): the
// SDK decodes the request, opens the transaction with the barrier row,
// hands the *sql.Tx to the handler, which wraps it for its ORM, and
// commits both together, so a duplicate delivery, a null compensation or
// a hanging action never reaches the ORM code.
//
// This is a Go module of its own, so gorm and ent never enter dtx's
// go.mod. Its tests start a throwaway PostgreSQL server; run them with
// sh scripts/examples.sh from the repository root, or go test ./... here.
package orm
