// Package shopdb opens the database of one shop service and hides the few
// differences between SQLite and Postgres that the shop's schemas meet.
//
// All shop SQL is written with $1, $2 placeholders: Postgres requires them and
// modernc.org/sqlite binds $NNN by ordinal, so one statement runs on both.
package shopdb
