package adversarial_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/inventory"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/saga"
)

// signingKey makes an HMAC branch call key, writes it to a file for
// `dtx server --call-key-file`, and returns it with its signer and verifier.
func signingKey(t *testing.T) (file string, signer *callsig.Signer, verifier *callsig.Verifier) {
	t.Helper()
	key, err := callsig.Generate(callsig.AlgHMAC, "adv-1")
	require.NoError(t, err)
	file = filepath.Join(t.TempDir(), "call.key")
	require.NoError(t, os.WriteFile(file, []byte(key.Encode()+"\n"), 0o600))
	signer, err = callsig.NewSigner(key)
	require.NoError(t, err)
	verifier, err = callsig.NewVerifier(key)
	require.NoError(t, err)
	return file, signer, verifier
}

// signingBranchHeaders are the Dtx-* headers of a branch call.
func signingBranchHeaders(gid string, branch int, op dtx.Op, attempt int) map[string]string {
	return map[string]string{
		dtx.HeaderGID: gid, dtx.HeaderBranch: strconv.Itoa(branch),
		dtx.HeaderOp: string(op), dtx.HeaderAttempt: strconv.Itoa(attempt),
	}
}

// TestSigning_HandMadeCompensateOfASucceededSagaRefused reproduces finding
// 5: the shop (participants built with the SDK, verifying) and a real
// `dtx server` process sharing a key; an order's saga succeeds through the
// server (so the server's calls are signed and accepted); then a
// hand-made compensation of that saga, with valid Dtx-* headers but no
// signature or a signature by another key, is refused 401 and changes
// neither the stock nor the balance. As a control, the same call signed
// with the real key does restore the stock: the refused call was a real
// threat.
func TestSigning_HandMadeCompensateOfASucceededSagaRefused(t *testing.T) {
	keyFile, signer, verifier := signingKey(t)
	s := startServer(t, serverOpts{Args: []string{"--call-key-file", keyFile}})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh, err := shop.Start(ctx, shop.Config{
		Dir: t.TempDir(), CoordinatorURL: s.URL, CallVerifier: verifier,
		BranchTimeout: 10 * time.Second, SagaTimeout: time.Minute, WaitTimeout: time.Minute,
	})
	require.NoError(t, err)
	defer sh.Close(context.Background())

	const product, user = 1, 1
	placed, err := sh.Orders.Place(ctx, order.PlaceRequest{UserID: user, Items: []order.Item{{ProductID: product, Quantity: 3}}}, "", true)
	require.NoError(t, err)
	o := placed.Order
	require.Equal(t, order.Completed, o.Status, "the saga ran through the signing server and succeeded (reason %q)", o.Reason)
	tx, err := client.ForURL(s.URL, nil).Get(ctx, o.GID)
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, tx.Status)

	stock := func() inventory.Product {
		p, err := sh.Inventory.Product(ctx, product)
		require.NoError(t, err)
		return p
	}
	balance := func() int64 {
		accts, err := sh.Payment.Accounts(ctx)
		require.NoError(t, err)
		for _, a := range accts {
			if a.UserID == user {
				return a.Balance
			}
		}
		t.Fatalf("no account %d", user)
		return 0
	}
	stockBefore, balanceBefore := stock(), balance()
	require.EqualValues(t, 3, stockBefore.Sold)

	// The compensations the coordinator would send (branches 1 and 2 of the
	// order's saga), with the payloads of the saga.
	deductBody, _ := json.Marshal(map[string]any{"order_id": o.ID, "items": o.Items})
	chargeBody, _ := json.Marshal(map[string]any{"order_id": o.ID, "user_id": o.UserID, "amount": o.Total})
	calls := []struct {
		url    string
		branch int
		body   []byte
	}{
		{sh.InventoryURL() + inventory.PathDeductCancel, 1, deductBody},
		{sh.PaymentURL() + "/payment/charge/cancel", 2, chargeBody},
	}
	forgerKey, err := callsig.Generate(callsig.AlgHMAC, "adv-1") // same id, another secret
	require.NoError(t, err)
	forger, err := callsig.NewSigner(forgerKey)
	require.NoError(t, err)
	for _, c := range calls {
		h := signingBranchHeaders(o.GID, c.branch, dtx.OpCompensate, 1)
		requireProblem(t, do(t, http.MethodPost, c.url, "application/json", c.body, h), http.StatusUnauthorized, "not signed")

		forged := signingBranchHeaders(o.GID, c.branch, dtx.OpCompensate, 1)
		forger.SetHeaders(func(k, v string) { forged[k] = v }, callsig.Call{GID: o.GID, Branch: c.branch, Op: string(dtx.OpCompensate),
			Attempt: 1, Deadline: time.Now().Add(time.Minute), Body: c.body})
		requireProblem(t, do(t, http.MethodPost, c.url, "application/json", c.body, forged), http.StatusUnauthorized, "does not match")
	}
	require.Equal(t, stockBefore, stock(), "refused compensations must not restore the stock")
	require.Equal(t, balanceBefore, balance(), "refused compensations must not refund the payment")

	// A pre-emptive cancel of the next (predictable) gid is refused too: it
	// leaves no barrier row that would turn the real action into a no-op.
	next := signingBranchHeaders(o.GID+"-next", 1, dtx.OpCompensate, 1)
	requireProblem(t, do(t, http.MethodPost, calls[0].url, "application/json", calls[0].body, next), http.StatusUnauthorized, "not signed")

	// Control: the same compensation signed with the coordinator's key runs.
	signed := signingBranchHeaders(o.GID, 1, dtx.OpCompensate, 1)
	signer.SetHeaders(func(k, v string) { signed[k] = v }, callsig.Call{GID: o.GID, Branch: 1, Op: string(dtx.OpCompensate),
		Attempt: 1, Deadline: time.Now().Add(time.Minute), Body: deductBody})
	r := do(t, http.MethodPost, calls[0].url, "application/json", deductBody, signed)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, stockBefore.Available+3, stock().Available, "a correctly signed compensation restores the stock")
}

// TestSigning_SignedCallReplayedWithAnotherOpRefused: a participant built
// with the SDK in the test process, a real `dtx server` with the key. The
// server's signed action call is captured on the way in; replayed
// unchanged it is a duplicate (accepted, the barrier's business), but
// replayed as a compensation (same signature, Dtx-Op changed), or with
// another gid or body, it is refused 401 and runs nothing.
func TestSigning_SignedCallReplayedWithAnotherOpRefused(t *testing.T) {
	keyFile, _, verifier := signingKey(t)
	s := startServer(t, serverOpts{Args: []string{"--call-key-file", keyFile}})

	type captured struct {
		header http.Header
		body   []byte
	}
	var (
		mu    sync.Mutex
		calls []captured
		ran   = map[dtx.Op]*atomic.Int32{dtx.OpAction: {}, dtx.OpCompensate: {}}
	)
	h := participant.Handler(func(_ context.Context, br participant.Branch, _ []byte) (any, error) {
		ran[br.Op].Add(1)
		return nil, nil
	}, participant.RequireSignature(verifier))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls = append(calls, captured{r.Header.Clone(), body})
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := client.ForURL(s.URL, nil).SubmitSaga(ctx, saga.Spec{Steps: []saga.Step{
		{Name: "pay", Action: srv.URL + "/pay", Compensate: srv.URL + "/refund", Payload: json.RawMessage(`{"amount":5}`)},
	}}, true)
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, tx.Status, "the server's signed call was accepted")
	require.EqualValues(t, 1, ran[dtx.OpAction].Load())

	mu.Lock()
	orig := calls[len(calls)-1]
	mu.Unlock()
	require.NotEmpty(t, orig.header.Get(callsig.HeaderSignature), "dtx server with --call-key-file signs its calls")
	replay := func(path string, edit func(map[string]string), body []byte) reply {
		hdr := map[string]string{}
		for _, k := range []string{dtx.HeaderGID, dtx.HeaderBranch, dtx.HeaderOp, dtx.HeaderAttempt, callsig.HeaderDeadline, callsig.HeaderSignature} {
			hdr[k] = orig.header.Get(k)
		}
		edit(hdr)
		return do(t, http.MethodPost, srv.URL+path, "application/json", body, hdr)
	}
	r := replay("/refund", func(h map[string]string) { h[dtx.HeaderOp] = string(dtx.OpCompensate) }, orig.body)
	requireProblem(t, r, http.StatusUnauthorized, "does not match")
	r = replay("/pay", func(h map[string]string) { h[dtx.HeaderGID] = "someone-else" }, orig.body)
	requireProblem(t, r, http.StatusUnauthorized, "does not match")
	r = replay("/pay", func(map[string]string) {}, []byte(`{"amount":5000}`))
	requireProblem(t, r, http.StatusUnauthorized, "does not match")
	r = replay("/pay", func(h map[string]string) {
		h[callsig.HeaderDeadline] = callsig.FormatDeadline(time.Now().Add(24 * time.Hour))
	}, orig.body)
	requireProblem(t, r, http.StatusUnauthorized, "does not match")
	require.Zero(t, ran[dtx.OpCompensate].Load(), "no refused replay may run the compensation")
	require.EqualValues(t, 1, ran[dtx.OpAction].Load())
}
