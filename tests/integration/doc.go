// Package integration holds end-to-end tests that build the dtx binary, run
// the coordinator as a real process next to the reference shop, kill it with
// SIGKILL in the middle of a batch of sagas, restart it, and check that every
// saga finished correctly and the shop's invariants hold — on SQLite and on
// a throwaway PostgreSQL server. They are skipped with -short.
package integration
