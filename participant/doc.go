// Package participant is the participant side of dtx: what a service that
// the coordinator calls needs to make its branch operations safe.
//
// The coordinator calls each branch operation as POST <url> with a JSON body
// and the headers Dtx-Gid, Dtx-Branch, Dtx-Op and Dtx-Attempt, and it
// classifies the answer: 2xx is success; 4xx other than 408, 425 and 429 is
// a definite failure (a business "no": nothing was applied); anything else,
// including network errors, is unknown and the same operation is retried.
// A branch operation is a BranchFunc; Handler serves it over HTTP, and
// Handler, WriteJSON and WriteError produce answers in those terms: an error
// wrapped with dtx.Permanent becomes 409, any other error 500. The same
// BranchFunc can be served for commands from a broker topic, answered the
// same way, by package transport/brokertransport (brokertransport.Serve),
// which holds that protocol.
//
// A participant reachable by anyone but its coordinator should verify who
// calls: with RequireSignature, Handler checks the call's Dtx-Signature
// (package callsig: the coordinator signs gid, branch, op, attempt,
// deadline and body) and answers 401 before the operation, and so before
// its barrier, runs. Without it, anyone who can reach the service can
// compensate a finished transaction or cancel a gid in advance.
//
// Because operations are retried and may be delivered more than once, may
// arrive out of order, and a compensation may arrive for an action that never
// ran (or is still on its way), every operation should run behind a Barrier.
// Barrier.Do executes the operation's local writes in one database
// transaction together with a barrier row keyed by (gid, branch, op), which
// gives:
//
//   - idempotence: a duplicate delivery of an operation that already
//     committed does nothing and reports success;
//   - null compensation: a compensation whose action never ran records that
//     fact and reports success without doing anything;
//   - anti-hanging: an action that arrives after its compensation is
//     refused with ErrHanging (a permanent error, answered 409);
//   - atomicity: if the operation fails, its barrier row is rolled back
//     with it, so a retry runs it again.
//
// Typed handlers put it all together: a participant writes its operation
// as a TxFunc, func(ctx, tx *sql.Tx, req Req) (Resp, error), and Typed (a
// BranchFunc, for Handler or brokertransport.Serve) or HandleJSON (an
// http.Handler) decode the JSON body into Req, run fn in the barrier's
// transaction and encode Resp; a body that does not decode is a BadRequest
// (400, a definite failure), dtx.Permanent a 409 refusal, any other error
// a 500 that the coordinator retries (see Status). pgxbarrier.Typed is the
// same on pgx.
//
// Barrier.Do works on database/sql (SQLite, PostgreSQL and MySQL dialects). Other
// drivers reuse the same logic through Barrier.Enter and the TxExecer
// interface; package participant/pgxbarrier does so for native pgx.
package participant
