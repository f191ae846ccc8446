package participant_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/transport/httptransport"
)

func signedHandler(t *testing.T) (*callsig.Signer, http.Handler, *atomic.Int32) {
	t.Helper()
	key, err := callsig.Generate(callsig.AlgHMAC, "k1")
	require.NoError(t, err)
	signer, err := callsig.NewSigner(key)
	require.NoError(t, err)
	v, err := callsig.NewVerifier(key)
	require.NoError(t, err)
	var ran atomic.Int32
	h := participant.Handler(func(ctx context.Context, br participant.Branch, body []byte) (any, error) {
		ran.Add(1)
		return map[string]string{"op": string(br.Op)}, nil
	}, participant.RequireSignature(v))
	return signer, h, &ran
}

func TestHandler_RequireSignature_Refuses401BeforeFnRuns(t *testing.T) {
	signer, h, ran := signedHandler(t)
	other, err := callsig.Generate(callsig.AlgHMAC, "k1")
	require.NoError(t, err)
	forger, err := callsig.NewSigner(other)
	require.NoError(t, err)

	sign := func(r *http.Request, s *callsig.Signer, op string, body string) {
		s.SetHeaders(r.Header.Set, callsig.Call{GID: "g1", Branch: 0, Op: op, Attempt: 1,
			Deadline: time.Now().Add(time.Minute), Body: []byte(body)})
	}
	cases := map[string]func() *http.Request{
		"unsigned": func() *http.Request { return branchRequest("POST", "g1", "0", "compensate", `{}`) },
		"wrong key": func() *http.Request {
			r := branchRequest("POST", "g1", "0", "compensate", `{}`)
			sign(r, forger, "compensate", `{}`)
			return r
		},
		"signed for another op": func() *http.Request {
			r := branchRequest("POST", "g1", "0", "compensate", `{}`)
			sign(r, signer, "action", `{}`)
			return r
		},
		"signed for another body": func() *http.Request {
			r := branchRequest("POST", "g1", "0", "compensate", `{"x":1}`)
			sign(r, signer, "compensate", `{}`)
			return r
		},
		"garbled": func() *http.Request {
			r := branchRequest("POST", "g1", "0", "compensate", `{}`)
			sign(r, signer, "compensate", `{}`)
			r.Header.Set(callsig.HeaderSignature, "k1:not base64!")
			return r
		},
		"expired": func() *http.Request {
			r := branchRequest("POST", "g1", "0", "compensate", `{}`)
			signer.SetHeaders(r.Header.Set, callsig.Call{GID: "g1", Op: "compensate", Attempt: 1,
				Deadline: time.Now().Add(-time.Hour), Body: []byte(`{}`)})
			return r
		},
	}
	for name, req := range cases {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req())
		require.Equal(t, http.StatusUnauthorized, w.Code, name)
		require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"), name)
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p), name)
		require.Equal(t, 401, p.Status, name)
		require.Contains(t, p.Detail, "call refused", name)
	}
	require.Zero(t, ran.Load(), "no refused call may reach the branch function")

	w := httptest.NewRecorder()
	r := branchRequest("POST", "g1", "0", "compensate", `{}`)
	sign(r, signer, "compensate", `{}`)
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.EqualValues(t, 1, ran.Load())
}

func TestHandler_RequireSignature_AcceptsTheCoordinatorsTransport(t *testing.T) {
	signer, h, ran := signedHandler(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	call := dtx.Call{GID: "g2", Branch: 1, Op: dtx.OpAction, URL: srv.URL, Payload: []byte(`{"n":1}`), Attempt: 1, Timeout: 5 * time.Second}

	out := httptransport.New(nil).WithSigner(signer).Call(context.Background(), call)
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.EqualValues(t, 1, ran.Load())

	out = httptransport.New(nil).Call(context.Background(), call)
	require.Equal(t, dtx.Unknown, out.Class, "an unsigned call is refused (401), which the coordinator retries")
	require.ErrorContains(t, out.Err, "401")
	require.EqualValues(t, 1, ran.Load())
}

func TestHandler_WithoutOptionStillServesUnsigned(t *testing.T) {
	h := participant.Handler(func(context.Context, participant.Branch, []byte) (any, error) { return nil, nil }, participant.RequireSignature(nil))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, branchRequest("POST", "g1", "0", "action", `{}`))
	require.Equal(t, http.StatusOK, w.Code)
}
