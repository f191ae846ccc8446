// Package dtx is the shared vocabulary of the dtx toolkit: global transaction
// ids (gids), branch and transaction states, the typed outcome of a branch
// call, and the Store interface that every durable store implements.
//
// # Where to start
//
// The module is github.com/dtxhq/dtx (go get github.com/dtxhq/dtx@latest);
// README.md's "Use it from Go" runs a two-service saga in one file
// (examples/quickstart). The packages, in the order a newcomer needs them:
//
//  1. participant: a service's side. Serve each branch operation with
//     participant.Handler and run its writes through participant.Barrier.Do
//     in the service's own database, so retries and out-of-order calls are
//     harmless. participant/sqlitedb opens a SQLite database with the right
//     settings; participant/pgxbarrier is the barrier on pgx;
//     participant/xa the XA branches.
//  2. saga and tcc: write a transaction in Go, saga.New(gid).Step(...) or
//     tcc.New(gid).Participant(...), then Build (checked as the coordinator
//     will).
//  3. client: submit it to a coordinator and wait for the outcome
//     (client.New, StartSaga / StartTCC / StartXA, Wait); 4xx answers
//     are *client.APIError values matching client.ErrNotFound,
//     ErrConflict and ErrInvalid.
//  4. embed: run the coordinator inside your own service (a store URL in,
//     an http.Handler with the API and dashboard and a bound client out);
//     or run the binary, `dtx server`.
//  5. outbox, inbox (and broker/natsbroker, broker/kafkabroker):
//     choreography without a coordinator, each event written with the
//     change that caused it and applied once by its consumers; flow
//     rebuilds a choreographed transaction's timeline.
//  6. eventstore and projection: event sourcing and read models in the
//     application's database.
//  7. dtxtest: test your own participants against every delivery
//     anomaly and a coordinator crash at every durable write.
//  8. coordinator, server, store/..., transport/...: the engine and its
//     parts, for embedding them differently or adding a store or transport
//     (docs/ARCHITECTURE.md says where each change goes).
//
// # How the pieces fit
//
// A global transaction — an orchestrated saga (branch calls over HTTP or, for
// asynchronous orchestration, as commands over a message broker), a TCC
// transaction (package tcc) or an XA transaction (package participant/xa) —
// is written to a Store before anything is acted on. The coordinator package
// drives it: it asks the pattern's pure state machine (package saga; TCC and
// XA are expressed as sagas) which branch calls are due, performs them
// through a transport (packages under transport/), classifies each answer as
// an Outcome and writes the new branch state back to the Store before
// deciding the next step.
//
// Choreographed transactions have no coordinator: services publish events
// through a transactional outbox (package outbox), consume them once through
// an inbox (package inbox), and package flow rebuilds a transaction's
// timeline from the events' correlation and causation ids.
//
// Each branch call ends in exactly one outcome class:
//
//   - Success: the participant applied the operation.
//   - Failure: a definite business "no"; the participant applied nothing and
//     retrying will not help. The saga compensates.
//   - Unknown: timeout, connection error, 5xx. The operation may or may not
//     have been applied; the coordinator retries the same operation with the
//     same ids and never guesses.
//
// Participants make every operation idempotent with the barrier in package
// participant, so that retries, duplicate deliveries, null compensations and
// late ("hanging") actions are harmless.
//
// # Durability and leases
//
// Every unfinished transaction carries a lease (owner, expiry). A
// coordinator drives only transactions it holds a lease on and every write it
// makes is fenced by that lease, so two coordinator processes sharing one
// database never drive the same transaction at once, and the transactions of
// a dead coordinator are claimed by another once its leases expire.
package dtx
