// Package faults injects failures into a shop service's saga endpoints, so
// that retries, compensations and the participant barrier can be watched
// (and tested) doing their job.
//
// An Injector wraps a service's http.Handler. Only branch calls, requests
// that carry the Dtx-Gid header, are touched; reads and order placement pass
// through. A faulted call gets one of three kinds:
//
//	fail   answer 503 before the handler runs: nothing was committed and the
//	       coordinator retries (an unknown outcome)
//	delay  sleep up to Config.Delay, then run the handler to completion even
//	       if the caller gave up: a call slower than the coordinator's branch
//	       timeout becomes a late action, which the barrier must refuse if
//	       its compensation got there first
//	lose   run the handler (it commits), then answer 500 or drop the
//	       connection: the coordinator cannot know the call succeeded and
//	       retries it, which the barrier must turn into a no-op
//
// Config.Ops restricts injection to some operations (for instance only TCC
// confirms), Config.Max caps the number of faults, and Config.MinDelay makes
// delays predictable, so a test can stage one precise failure.
//
// Choices come from a random source seeded with Config.Seed, so a run with
// one seed and one request order faults the same calls.
package faults
