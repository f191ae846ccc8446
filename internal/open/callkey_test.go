package open_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/internal/open"
)

func TestCallKeys_FileThenEnvThenNone(t *testing.T) {
	a, err := callsig.Generate(callsig.AlgHMAC, "a")
	require.NoError(t, err)
	b, err := callsig.Generate(callsig.AlgEd25519, "b")
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte("# rotation: b signs, a still verifies\n"+b.Encode()+"\n"+a.Encode()+"\n"), 0o600))

	keys, err := open.CallKeys(file, a.Encode())
	require.NoError(t, err)
	require.Len(t, keys, 2, "the file wins over the environment")
	s, err := open.CallSigner(keys)
	require.NoError(t, err)
	require.Equal(t, "b", s.KeyID(), "the first key signs")
	v, err := open.CallVerifier(keys)
	require.NoError(t, err)
	require.NotNil(t, v)

	keys, err = open.CallKeys("", a.Encode())
	require.NoError(t, err)
	require.Len(t, keys, 1)

	keys, err = open.CallKeys("", "  ")
	require.NoError(t, err)
	require.Nil(t, keys)
	s, err = open.CallSigner(keys)
	require.NoError(t, err)
	require.Nil(t, s, "no key: unsigned")

	_, err = open.CallKeys(filepath.Join(t.TempDir(), "missing"), "")
	require.ErrorContains(t, err, "call key file")
	_, err = open.CallKeys("", "hmac:a:"+"c2hvcnQ=")
	require.ErrorContains(t, err, "$DTX_CALL_KEY")
	_, err = open.CallSigner([]callsig.Key{b.Public()})
	require.ErrorContains(t, err, "cannot sign")
}
