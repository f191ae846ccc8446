package adversarial_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Finding 8: a participant's error text that carries terminal escape
// sequences must reach the operator's terminal through `dtx tx show` and
// `dtx tx list` as visible escapes, never as bytes the terminal acts on
// (clearing the screen, retitling the window, reversing text).
func TestEscapes_ParticipantTextNeverReachesTheTerminalRaw(t *testing.T) {
	const token = "escapes-admin-token-0123456789"
	s := startServer(t, serverOpts{Args: []string{"--admin-token", token}})
	// Clear screen, set the window title, then a right-to-left override.
	const hostile = "\x1b[2J\x1b]0;owned\x07\u202e"
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/pay" {
			return // the compensation succeeds
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"detail":"declined \u001b[2J\u001b]0;owned\u0007\u202e"}`))
	}))
	t.Cleanup(evil.Close)

	r := do(t, http.MethodPost, s.URL+"/v1/sagas?wait=true", "application/json",
		[]byte(`{"gid":"esc-1","steps":[{"name":"pay","action":"`+evil.URL+`/pay","compensate":"`+evil.URL+`/undo"}]}`),
		map[string]string{"Authorization": "Bearer " + token})
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	require.Contains(t, string(r.Body), `\u001b[2J`, "the coordinator keeps the participant's text as it came")

	for _, args := range [][]string{{"tx", "show", "esc-1"}, {"tx", "list"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, dtxBinary(t), append(args, "--server", s.URL, "--token", token)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		require.NoError(t, err, "%v: %s", args, out.String())
		text := out.String()
		for i := 0; i < len(text); i++ {
			c := text[i]
			require.False(t, (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f,
				"%v printed the control byte %#x:\n%q", args, c, text)
		}
		require.NotContains(t, text, "\u202e", "%v printed a bidi override", args)
		if args[1] == "show" {
			require.True(t, strings.Contains(text, `\x1b[2J`), "%v shows the escape visibly:\n%s", args, text)
		}
	}
	require.True(t, s.Healthy())
}
