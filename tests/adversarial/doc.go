// Package adversarial attacks a real `dtx server` process the way a hostile
// or careless submitter, caller or reader would, one finding of the
// hardening review per test, and checks that the server refuses the attack
// and keeps serving. Everything talks to loopback only, on ports the
// kernel picks, and is bounded in count and time. The tests are skipped
// with -short.
package adversarial
