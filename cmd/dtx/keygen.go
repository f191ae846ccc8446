package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/internal/open"
)

// runKeygen prints a new branch call key, or with --public the public
// forms of the keys read from stdin.
func runKeygen(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx keygen", flag.ContinueOnError)
	alg := fs.String("alg", callsig.AlgHMAC, "hmac (a secret shared by coordinator and participants) or ed25519 (participants hold only the public key)")
	kid := fs.String("kid", "", "key id, sent with every signature (default: today's date, e.g. 2026-12-04)")
	public := fs.Bool("public", false, "read keys from stdin and print what participants need: the public key of an ed25519 key (an hmac key is its own)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *public {
		text, err := io.ReadAll(bufio.NewReader(os.Stdin))
		if err != nil {
			return err
		}
		keys, err := callsig.ParseKeys(string(text))
		if err != nil {
			return usageError{err.Error()}
		}
		for _, k := range keys {
			fmt.Println(k.Public().Encode())
		}
		return nil
	}
	if *kid == "" {
		*kid = time.Now().UTC().Format("2006-01-02")
	}
	k, err := callsig.Generate(strings.ToLower(*alg), *kid)
	if err != nil {
		return usageError{err.Error()}
	}
	fmt.Println(k.Encode())
	return nil
}

// callKeys reads the branch call keys of --call-key-file, else of
// $DTX_CALL_KEY; none is nil (unsigned calls).
func callKeys(file string) ([]callsig.Key, error) {
	keys, err := open.CallKeys(file, os.Getenv(open.CallKeyEnv))
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return keys, nil
}

// callSigner is the signer of --call-key-file / $DTX_CALL_KEY (its first
// key), or nil.
func callSigner(file string) (*callsig.Signer, error) {
	keys, err := callKeys(file)
	if err != nil {
		return nil, err
	}
	s, err := open.CallSigner(keys)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return s, nil
}

// callVerifier is the verifier of --call-key-file / $DTX_CALL_KEY (all its
// keys), or nil.
func callVerifier(file string) (*callsig.Verifier, error) {
	keys, err := callKeys(file)
	if err != nil {
		return nil, err
	}
	v, err := open.CallVerifier(keys)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return v, nil
}
