package callsig_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/callsig"
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func call() callsig.Call {
	return callsig.Call{GID: "order-7", Branch: 1, Op: "compensate", Attempt: 2,
		Deadline: now.Add(30 * time.Second), Body: []byte(`{"order":7}`)}
}

func pair(t *testing.T, alg, kid string) (*callsig.Signer, *callsig.Verifier) {
	t.Helper()
	k, err := callsig.Generate(alg, kid)
	require.NoError(t, err)
	s, err := callsig.NewSigner(k)
	require.NoError(t, err)
	// Participants get the encoded public form, as from a file.
	pub, err := callsig.ParseKey(k.Public().Encode())
	require.NoError(t, err)
	v, err := callsig.NewVerifier(pub)
	require.NoError(t, err)
	v.Now = func() time.Time { return now }
	return s, v
}

func TestSignVerify_BothAlgorithms_RefuseEveryTamperedField(t *testing.T) {
	for _, alg := range []string{callsig.AlgHMAC, callsig.AlgEd25519} {
		t.Run(alg, func(t *testing.T) {
			s, v := pair(t, alg, "k1")
			c := call()
			sig := s.Sign(c)
			require.NoError(t, v.Verify(c, sig))

			tamper := map[string]func(*callsig.Call){
				"gid":      func(c *callsig.Call) { c.GID = "order-8" },
				"branch":   func(c *callsig.Call) { c.Branch = 0 },
				"op":       func(c *callsig.Call) { c.Op = "action" },
				"attempt":  func(c *callsig.Call) { c.Attempt = 3 },
				"body":     func(c *callsig.Call) { c.Body = []byte(`{"order":8}`) },
				"deadline": func(c *callsig.Call) { c.Deadline = c.Deadline.Add(time.Nanosecond) },
			}
			for name, f := range tamper {
				tc := call()
				f(&tc)
				err := v.Verify(tc, sig)
				require.ErrorIs(t, err, callsig.ErrBadMAC, "tampered %s", name)
				require.ErrorIs(t, err, callsig.ErrRefused)
			}
		})
	}
}

func TestVerify_RefusesMissingGarbledUnknownAndForeignKeys(t *testing.T) {
	s, v := pair(t, callsig.AlgHMAC, "k1")
	c := call()
	sig := s.Sign(c)
	require.ErrorIs(t, v.Verify(c, ""), callsig.ErrMissing)
	for _, bad := range []string{"nocolon", "k1:***", "bad kid:" + strings.SplitN(sig, ":", 2)[1], "k1:"} {
		err := v.Verify(c, bad)
		require.Error(t, err, bad)
		require.ErrorIs(t, err, callsig.ErrRefused, bad)
	}
	require.ErrorIs(t, v.Verify(c, "k2:"+strings.SplitN(sig, ":", 2)[1]), callsig.ErrUnknownKey)

	// Same id, another secret: a bad MAC.
	other, _ := pair(t, callsig.AlgHMAC, "k1")
	require.ErrorIs(t, v.Verify(c, other.Sign(c)), callsig.ErrBadMAC)
	// An Ed25519 signature under an HMAC key's id is refused too.
	ed, _ := pair(t, callsig.AlgEd25519, "k1")
	require.ErrorIs(t, v.Verify(c, ed.Sign(c)), callsig.ErrBadMAC)
}

func TestVerify_DeadlineWindow(t *testing.T) {
	s, v := pair(t, callsig.AlgEd25519, "k1")
	at := func(d time.Duration) error {
		c := call()
		c.Deadline = now.Add(d)
		return v.Verify(c, s.Sign(c))
	}
	require.NoError(t, at(time.Second))
	require.NoError(t, at(-callsig.DefaultSkew+time.Second), "within the skew allowance")
	require.ErrorIs(t, at(-callsig.DefaultSkew-time.Second), callsig.ErrExpired)
	require.NoError(t, at(callsig.MaxValidity))
	require.ErrorIs(t, at(callsig.MaxValidity+callsig.DefaultSkew+time.Second), callsig.ErrTooFar)
	require.ErrorIs(t, at(1000*time.Hour), callsig.ErrTooFar)
}

func TestRotation(t *testing.T) {
	oldKey, err := callsig.Generate(callsig.AlgHMAC, "2026-01")
	require.NoError(t, err)
	newKey, err := callsig.Generate(callsig.AlgHMAC, "2026-02")
	require.NoError(t, err)
	oldSigner, _ := callsig.NewSigner(oldKey)
	newSigner, _ := callsig.NewSigner(newKey)
	c := call()
	verifier := func(keys ...callsig.Key) *callsig.Verifier {
		v, err := callsig.NewVerifier(keys...)
		require.NoError(t, err)
		v.Now = func() time.Time { return now }
		return v
	}
	// Step 1: verifiers know both; the old signer still works.
	both := verifier(oldKey, newKey)
	require.NoError(t, both.Verify(c, oldSigner.Sign(c)))
	// Step 2: the signer switches.
	require.NoError(t, both.Verify(c, newSigner.Sign(c)))
	// Step 3: the old key is removed and no longer accepted.
	onlyNew := verifier(newKey)
	require.NoError(t, onlyNew.Verify(c, newSigner.Sign(c)))
	require.ErrorIs(t, onlyNew.Verify(c, oldSigner.Sign(c)), callsig.ErrUnknownKey)
}

func TestKeys_EncodeParse(t *testing.T) {
	for _, alg := range []string{callsig.AlgHMAC, callsig.AlgEd25519} {
		k, err := callsig.Generate(alg, "kid-1")
		require.NoError(t, err)
		back, err := callsig.ParseKey(k.Encode())
		require.NoError(t, err)
		require.Equal(t, k.Encode(), back.Encode())
		require.True(t, back.CanSign())
		require.NotContains(t, k.String(), strings.SplitN(k.Encode(), ":", 3)[2], "String must not show the secret")
	}
	ed, _ := callsig.Generate(callsig.AlgEd25519, "e")
	pub := ed.Public()
	require.Equal(t, callsig.AlgEd25519Public, pub.Alg())
	require.False(t, pub.CanSign())
	_, err := callsig.NewSigner(pub)
	require.Error(t, err)

	for _, bad := range []string{
		"", "hmac", "hmac:k1", "hmac:k1:!!", "hmac:k1:c2hvcnQ=", "rsa:k1:AAAA",
		"hmac:bad id:" + strings.Repeat("A", 44), "ed25519:k1:" + strings.Repeat("A", 44),
		"ed25519-public:k1:" + strings.Repeat("A", 8),
	} {
		_, err := callsig.ParseKey(bad)
		require.Error(t, err, "%q", bad)
	}
	hm, _ := callsig.Generate(callsig.AlgHMAC, "h")
	keys, err := callsig.ParseKeys("# comment, with a comma\n" + hm.Encode() + "\n\n" + pub.Encode() + "\n")
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Equal(t, "h", keys[0].ID())
	keys, err = callsig.ParseKeys(hm.Encode() + "," + pub.Encode())
	require.NoError(t, err)
	require.Len(t, keys, 2)
	_, err = callsig.ParseKeys(hm.Encode() + "\n" + hm.Encode())
	require.ErrorContains(t, err, "two keys")
	_, err = callsig.ParseKeys("# nothing\n")
	require.Error(t, err)
}

func TestHeaders_RoundTrip(t *testing.T) {
	s, v := pair(t, callsig.AlgHMAC, "k1")
	c := call()
	h := http.Header{}
	h.Set("Dtx-Gid", c.GID)
	h.Set("Dtx-Branch", "1")
	h.Set("Dtx-Op", c.Op)
	h.Set("Dtx-Attempt", "2")
	s.SetHeaders(h.Set, c)
	require.NoError(t, v.VerifyHeaders(h.Get, c.Body))
	require.ErrorIs(t, v.VerifyHeaders(h.Get, []byte(`{}`)), callsig.ErrBadMAC)

	h2 := h.Clone()
	h2.Set("Dtx-Op", "action")
	require.ErrorIs(t, v.VerifyHeaders(h2.Get, c.Body), callsig.ErrBadMAC)
	h3 := h.Clone()
	h3.Set(callsig.HeaderDeadline, "tomorrow")
	require.ErrorIs(t, v.VerifyHeaders(h3.Get, c.Body), callsig.ErrMalformed)
	h4 := h.Clone()
	h4.Del(callsig.HeaderSignature)
	require.True(t, errors.Is(v.VerifyHeaders(h4.Get, c.Body), callsig.ErrMissing))
}
