package open

import (
	"fmt"
	"os"
	"strings"

	"github.com/dtxhq/dtx/callsig"
)

// CallKeyEnv names the environment variable that holds the branch call
// keys (see CallKeys) when no key file is given.
const CallKeyEnv = "DTX_CALL_KEY"

// CallKeys reads the branch call keys (package callsig, one per line or
// comma-separated; the first one signs) from file, or else from env (the
// value of CallKeyEnv). It returns nil, nil when both are empty: calls are
// then unsigned.
func CallKeys(file, env string) ([]callsig.Key, error) {
	text := env
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("call key file: %w", err)
		}
		text = string(b)
	} else if strings.TrimSpace(env) == "" {
		return nil, nil
	}
	keys, err := callsig.ParseKeys(text)
	if err != nil {
		src := "$" + CallKeyEnv
		if file != "" {
			src = file
		}
		return nil, fmt.Errorf("call key (%s): %w", src, err)
	}
	return keys, nil
}

// CallSigner is the signer of keys: their first key, which must be able to
// sign (an HMAC or Ed25519 private key). No keys is a nil signer.
func CallSigner(keys []callsig.Key) (*callsig.Signer, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	return callsig.NewSigner(keys[0])
}

// CallVerifier is the verifier of keys (all of them, during a rotation).
// No keys is a nil verifier.
func CallVerifier(keys []callsig.Key) (*callsig.Verifier, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	return callsig.NewVerifier(keys...)
}
