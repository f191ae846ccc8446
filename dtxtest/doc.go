// Package dtxtest is a test kit for your own participants: it runs their
// handlers under a real coordinator, on loopback, and replays every
// delivery anomaly and crash that the participant barrier has to absorb,
// checking an invariant you supply after each one.
//
// A participant is correct when whatever happens to the calls between the
// coordinator and it, the effect of a transaction is applied exactly once
// if the transaction succeeded and not at all if it failed. Calls get
// duplicated, lost, retried after a timeout while the original still
// travels, and a compensation can overtake its action. Processes crash
// between a database commit and the answer. dtxtest makes each of these
// happen, one scenario per transaction (the faults are chosen from
// Config.Seed, not at random; the crash scenarios follow the writes of the
// clean run):
//
//   - clean: nothing goes wrong (the reference outcome of each case);
//   - duplicate: every call is delivered twice, one after the other;
//   - concurrent-duplicate: every call is delivered twice at the same time;
//   - lost-request, per operation: the first call never reaches the
//     participant (a participant crash before its commit);
//   - lost-response, per operation: the participant applies the first call
//     and its answer is lost (a crash after its commit); the coordinator
//     retries;
//   - late-original, per operation: the first call times out and is
//     retried, and the original arrives after the transaction ended;
//   - null-compensation, per compensatable action: the action never
//     arrives in time, so the transaction times out and its compensation
//     reaches the participant first (a null compensation); then the action
//     arrives (a hanging action);
//   - crash-before-write and crash-after-write, per durable write: the
//     coordinator crashes just before (the write is lost) or just after
//     (the write is kept, nothing after it happens) each write of the
//     transaction's state; a new coordinator recovers it from the store
//     once the dead one's lease is gone (the kit releases it, as its
//     expiry would), and the client resubmits if the submission was lost;
//   - storm: Config.Storm transactions per case with a random mix of the
//     faults above on every call (seeded by Config.Seed).
//
// Every scenario must end (a transaction left unfinished is reported),
// every scenario other than null-compensation must end as the clean run of
// its case did (a delivery fault or a crash must not change the outcome),
// and Config.Check must pass. Violations are reported through t.Errorf, so a
// kit run is an ordinary Go test:
//
//	func TestWalletUnderFaults(t *testing.T) {
//		w := newWallet(t) // the service under test, on a throwaway database
//		dtxtest.Run(t, dtxtest.Config{
//			Services: map[string]http.Handler{"wallet": w.Handler()},
//			Cases: []dtxtest.Case{{Name: "debit", Build: func(in dtxtest.Instance) (dtxtest.Transaction, error) {
//				return dtxtest.Saga(saga.New(in.GID).
//					Step("debit", in.URL("wallet")+"/debit", in.URL("wallet")+"/debit/undo",
//						saga.Payload(debit{Account: in.N, Amount: 100})).Build())
//			}}},
//			Check: func(ctx context.Context, r dtxtest.Result) error {
//				return w.checkAccount(ctx, r.N, r.Status == dtx.StatusSucceeded)
//			},
//		})
//	}
//
// Each transaction is one Instance with a gid and a sequence number N
// unique in the run: key your test data on N (an account, an order id) so
// that scenarios do not share state, and give shared resources enough room
// (stock, balance) that an earlier scenario cannot change a later one's
// outcome.
//
// The scenarios, and the faults of the storm, are the same for the same
// seed and cases. Where a transaction runs operations in parallel (TCC
// confirms and cancels, a parallel saga), what its n-th durable write holds
// can depend on which call answered first, so a crash scenario may stop
// the coordinator at a different state from one run to the next; for a
// sequential saga it does not.
//
// What the kit does not model: a participant's process restart (its
// in-memory state; model it in your handler if it has any), and its database
// losing a commit it acknowledged. The coordinator's crashes are real: its
// store (SQLite, in t.TempDir) keeps exactly what was written before the
// crash.
package dtxtest
