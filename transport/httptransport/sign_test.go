package httptransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/transport/httptransport"
)

func TestCall_SignedWithSigner(t *testing.T) {
	key, err := callsig.Generate(callsig.AlgEd25519, "k1")
	require.NoError(t, err)
	signer, err := callsig.NewSigner(key)
	require.NoError(t, err)
	verifier, err := callsig.NewVerifier(key.Public())
	require.NoError(t, err)

	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- verifier.VerifyHeaders(r.Header.Get, b)
	}))
	defer srv.Close()

	call := dtx.Call{GID: "g1", Branch: 2, Op: dtx.OpCompensate, URL: srv.URL, Attempt: 3, Timeout: 10 * time.Second}
	out := httptransport.New(nil).WithSigner(signer).Call(context.Background(), call)
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.NoError(t, <-got, "the participant verifies the signed call (empty payload sent and signed as {})")

	out = httptransport.New(nil).Call(context.Background(), call)
	require.Equal(t, dtx.Success, out.Class)
	require.ErrorIs(t, <-got, callsig.ErrMissing, "without a signer calls go unsigned")
}

func TestClassify_UnauthorizedIsUnknown(t *testing.T) {
	// A participant refusing the signature ran nothing; the coordinator
	// retries (and alerts) rather than compensating a business failure.
	require.Equal(t, dtx.Unknown, httptransport.Classify(http.StatusUnauthorized))
}
