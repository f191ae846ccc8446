package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
)

const cliToken = "cli-test-admin-token-42"

// txEnv runs a coordinator (admin token cliToken) and a participant that
// refuses /pay (409), fails the first /stock-undo (503) and blocks /hang
// until the test ends.
func txEnv(t *testing.T) (apiURL, partURL string) {
	t.Setenv(adminTokenEnv, "")
	t.Setenv(serverEnv, "")
	hang := make(chan struct{})
	undo := 0
	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/pay":
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"detail":"card declined"}`))
		case "/stock-undo":
			if undo++; undo == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		case "/hang":
			<-hang
		}
	}))
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	api := httptest.NewServer(server.New(c, server.WithAdminToken(cliToken)))
	t.Cleanup(func() {
		close(hang)
		api.Close()
		c.Close(context.Background())
		part.Close()
		st.Close()
	})
	return api.URL, part.URL
}

// runCLI runs dtx tx with args and returns what it printed on stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	runErr := runTx(context.Background(), args)
	os.Stdout = old
	w.Close()
	return <-done, runErr
}

func requireUsage(t *testing.T, err error, want string) {
	t.Helper()
	var ue usageError
	require.ErrorAs(t, err, &ue, "a usage error (exit 2): %v", err)
	require.Contains(t, err.Error(), want)
	require.NotContains(t, err.Error(), "\n", "one line")
}

func requireFailure(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err)
	var ue usageError
	require.False(t, errors.As(err, &ue), "not a usage error (exit 1): %v", err)
	require.Contains(t, err.Error(), want)
	require.NotContains(t, err.Error(), "\n", "one line")
}

func TestTxCLI(t *testing.T) {
	apiURL, partURL := txEnv(t)
	srv := "--server=" + apiURL
	cl := client.ForURL(apiURL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	d, err := cl.SubmitSaga(client.WithTraceParent(ctx, tp), saga.Spec{GID: "ord-1", Steps: []saga.Step{
		{Name: "stock", Action: partURL + "/stock", Compensate: partURL + "/stock-undo"},
		{Name: "payment", Action: partURL + "/pay", Compensate: partURL + "/pay-undo"},
	}}, true)
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)

	t.Run("show", func(t *testing.T) {
		// Without the token, the participants' error details are hidden.
		out, err := runCLI(t, "show", "ord-1", srv)
		require.NoError(t, err)
		require.NotContains(t, out, "card declined")
		require.Contains(t, out, "failed: hidden: admin token required")

		out, err = runCLI(t, "show", "ord-1", srv, "--token="+cliToken)
		require.NoError(t, err)
		// Columns are aligned with spaces; compare with single spaces.
		flat := regexp.MustCompile(` +`).ReplaceAllString(out, " ")
		for _, want := range []string{
			"ord-1 saga FAILED",
			"reason step 1 (payment) failed: HTTP 409: card declined",
			"trace 0af7651916cd43dd8448eb211c80319c",
			"coordinator -> stock: action (attempt 1) ok",
			"!! coordinator -> payment: action (attempt 1) FAILED",
			"HTTP 409: card declined",
			"coordinator == compensating: step 1 (payment) failed",
			"coordinator -> payment: compensate (attempt 1) [undo] ok",
			"!! coordinator -> stock: compensate (attempt 1) [undo] UNKNOWN",
			"(retried): HTTP 503",
			"coordinator -> stock: compensate (attempt 2) [undo] ok",
			"coordinator == failed",
		} {
			require.Contains(t, flat, want, "output:\n%s", out)
		}
		// In order: the failure, then compensations in reverse.
		require.Less(t, strings.Index(flat, "payment: action"), strings.Index(flat, "payment: compensate"))
		require.Less(t, strings.Index(flat, "payment: compensate"), strings.Index(flat, "stock: compensate (attempt 1)"))
		require.NotContains(t, out, "\x1b[", "no colour when not a terminal")

		out, err = runCLI(t, "show", "--json", "ord-1", srv)
		require.NoError(t, err)
		var back dtx.TxDetail
		require.NoError(t, json.Unmarshal([]byte(out), &back))
		require.Equal(t, "ord-1", back.GID)
		require.NotEmpty(t, back.Events)
	})

	t.Run("list", func(t *testing.T) {
		out, err := runCLI(t, "list", srv)
		require.NoError(t, err)
		require.Contains(t, out, "running 0  compensating 0  succeeded 0  failed 1")
		require.Regexp(t, `(?m)^ord-1\s+saga\s+failed\s+\d+s ago\s+\S+\s+step 1 \(payment\) failed`, out)

		out, err = runCLI(t, "list", "--status", "succeeded", srv)
		require.NoError(t, err)
		require.Contains(t, out, "no transactions")

		out, err = runCLI(t, "list", "--json", srv)
		require.NoError(t, err)
		var res api.ListResponse
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		require.Len(t, res.Transactions, 1)
		require.Equal(t, 1, res.Counts[dtx.StatusFailed])
	})

	t.Run("actions", func(t *testing.T) {
		_, err := cl.SubmitSaga(ctx, saga.Spec{GID: "ord-2", Steps: []saga.Step{
			{Name: "stock", Action: partURL + "/stock", Compensate: partURL + "/stock-undo2"},
			{Name: "slow", Action: partURL + "/hang", Compensate: partURL + "/hang-undo"},
		}}, false)
		require.NoError(t, err)
		// It needs attention once it is older than 1ms by the server's
		// clock: ask until it does.
		const want = "needing attention (unfinished after 1ms): 1"
		var out string
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(30 * time.Second); ; <-tick.C {
			out, err = runCLI(t, "list", "--attention", "--older-than=1ms", "--min-attempts=-1", srv)
			require.NoError(t, err)
			if strings.Contains(out, want) || time.Now().After(deadline) {
				break
			}
		}
		require.Contains(t, out, want)
		require.Regexp(t, `(?m)^ord-2\s+saga\s+running\s+\d+s\s+running for`, out)

		_, err = runCLI(t, "retry", "ord-2", srv)
		requireFailure(t, err, adminTokenEnv)
		_, err = runCLI(t, "abort", "ord-2", srv, "--token", "wrong-token-wrong-token")
		requireFailure(t, err, "refused the admin token")

		out, err = runCLI(t, "retry", "ord-2", srv, "--token", cliToken)
		require.NoError(t, err)
		require.Contains(t, out, "ord-2 (running): no call was waiting on backoff")

		t.Setenv(adminTokenEnv, cliToken)
		out, err = runCLI(t, "abort", "ord-2", "--reason", "operator test", srv)
		require.NoError(t, err)
		require.Equal(t, "ord-2: compensating\n", out)
		g, err := cl.Get(ctx, "ord-2")
		require.NoError(t, err)
		require.Equal(t, "operator test", g.Reason)

		_, err = runCLI(t, "retry", "ord-1", srv)
		requireFailure(t, err, "HTTP 409")
		_, err = runCLI(t, "abort", "missing", srv)
		requireFailure(t, err, `transaction "missing" not found`)
		_, err = runCLI(t, "show", "missing", srv)
		requireFailure(t, err, `transaction "missing" not found`)
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{nil, "want a subcommand"},
			{[]string{"frobnicate"}, `unknown subcommand "frobnicate"`},
			{[]string{"show", srv}, "missing GID"},
			{[]string{"show", "a", "b", srv}, `unexpected argument "b"`},
			{[]string{"show", "", srv}, "GID must not be empty"},
			{[]string{"retry", srv}, "missing GID"},
			{[]string{"list", "extra", srv}, `unexpected argument "extra"`},
			{[]string{"list", "--status", "done", srv}, `status "done"`},
			{[]string{"list", "--limit", "0", srv}, "limit"},
			{[]string{"list", "--min-attempts", "3", srv}, "need --attention"},
			{[]string{"list", "--attention", "--status", "running", srv}, "do not go together"},
			{[]string{"list", "--attention", "--min-attempts=-1", "--older-than=-1s", srv}, "keep at least one"},
			{[]string{"list", "--server", "127.0.0.1:8480"}, "want a URL"},
			{[]string{"list", "--nope"}, "flag provided but not defined"},
			{[]string{"list", "--timeout", "0s", srv}, "timeout"},
		} {
			_, err := runCLI(t, tc.args...)
			requireUsage(t, err, tc.want)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		ln := httptest.NewServer(http.NotFoundHandler())
		dead := ln.URL
		ln.Close()
		_, err := runCLI(t, "list", "--server", dead)
		requireFailure(t, err, "cannot reach the coordinator at "+dead)
	})
}

func TestTxCLI_ServerFromEnv(t *testing.T) {
	apiURL, _ := txEnv(t)
	t.Setenv(serverEnv, apiURL)
	out, err := runCLI(t, "list")
	require.NoError(t, err)
	require.Contains(t, out, "no transactions")
}

func TestCheckAdminToken(t *testing.T) {
	require.NoError(t, checkAdminToken(""))
	require.NoError(t, checkAdminToken("0123456789abcdef"))
	requireUsage(t, checkAdminToken("short"), "at least 16")
	requireUsage(t, checkAdminToken("0123456789 abcdef"), "printable ASCII")
}

// TestTxCLI_EscapesControlCharacters: a participant's error text carrying
// terminal escape sequences (and a step name with a bidi override) is
// printed as visible escapes, never as the bytes a terminal would act on.
func TestTxCLI_EscapesControlCharacters(t *testing.T) {
	apiURL, _ := txEnv(t)
	srv := "--server=" + apiURL
	const hostile = "\x1b[2J\x1b]0;owned\x07\u202e"
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/pay" {
			return // the compensation succeeds
		}
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"detail":"declined ` + strings.ReplaceAll(strings.ReplaceAll(hostile, "\x1b", `\u001b`), "\x07", `\u0007`) + `"}`))
	}))
	t.Cleanup(evil.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A step name with control characters is refused at submission; the
	// participant's error text is the way in that is left.
	_, err := client.ForURL(apiURL, nil).SubmitSaga(ctx, saga.Spec{GID: "esc-0", Steps: []saga.Step{
		{Name: "pay" + hostile, Action: evil.URL + "/pay", Compensate: evil.URL + "/undo"},
	}}, true)
	require.ErrorIs(t, err, dtx.ErrInvalid)
	require.ErrorContains(t, err, "steps[0].name")
	holder := client.ForURL(apiURL, nil)
	holder.AdminToken = cliToken // participants' text is shown to the token's holders only
	d, err := holder.SubmitSaga(ctx, saga.Spec{GID: "esc-1", Steps: []saga.Step{
		{Name: "p", Action: evil.URL + "/pay", Compensate: evil.URL + "/undo"},
	}}, true)
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "\x1b[2J", "the coordinator keeps the text as it came")

	// With the token, so that the participant's text is shown (escaped).
	for _, args := range [][]string{{"show", "esc-1", srv, "--token=" + cliToken}, {"list", srv, "--token=" + cliToken}} {
		out, err := runCLI(t, args...)
		require.NoError(t, err)
		for i := 0; i < len(out); i++ {
			require.False(t, (out[i] < 0x20 && out[i] != '\n') || out[i] == 0x7f,
				"%v printed the control byte %#x:\n%q", args, out[i], out)
		}
		require.NotContains(t, out, "\u202e", "%v printed a bidi override", args)
		require.Contains(t, out, `\x1b[2J\x1b]0;owned\x07\u202e`, "%v shows the escapes:\n%s", args, out)
	}
}

// TestTxCLI_ForcedAbort: `dtx tx abort --force` stops a saga that can
// never finish (its step past the pivot hangs), prints the reason and the
// branch left for a human, and `show` tells the same from the history.
func TestTxCLI_ForcedAbort(t *testing.T) {
	apiURL, partURL := txEnv(t)
	srv := "--server=" + apiURL
	cl := client.ForURL(apiURL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl.SubmitSaga(ctx, saga.Spec{GID: "stuck-1", Steps: []saga.Step{
		{Name: "ship", Action: partURL + "/hang"},
	}}, false)
	require.NoError(t, err)
	t.Setenv(adminTokenEnv, cliToken)

	_, err = runCLI(t, "abort", "stuck-1", srv)
	requireFailure(t, err, "forced abort")
	t.Setenv("USER", "")
	_, err = runCLI(t, "abort", "stuck-1", "--force", srv)
	requireUsage(t, err, "--force needs --operator")

	out, err := runCLI(t, "abort", "stuck-1", "--force", "--operator", "ops-alice", "--reason", "carrier gone", srv)
	require.NoError(t, err)
	require.Contains(t, out, "stuck-1: failed\n")
	require.Contains(t, out, `reason: aborted by operator "ops-alice" from 127.0.0.1:`)
	require.Contains(t, out, "carrier gone")
	require.Contains(t, out, "needs a human: branch 0 (ship): action outcome unknown after 1 call(s)")

	out, err = runCLI(t, "show", "stuck-1", srv)
	require.NoError(t, err)
	require.Contains(t, out, "NEEDS A HUMAN: action outcome unknown")
	require.Contains(t, out, `aborted by operator "ops-alice"`)

	_, err = runCLI(t, "abort", "stuck-1", "--force", "--operator", "ops-alice", srv)
	requireFailure(t, err, "already finished")
}
