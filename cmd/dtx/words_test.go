package main

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/tcc"
)

// TestTxShow_TCCWords: dtx tx show names a TCC transaction's operations as
// the participants see them (try and cancel, confirm), not action and
// compensate, and the pattern as "TCC".
func TestTxShow_TCCWords(t *testing.T) {
	ts := tcc.Spec{GID: "tcc-1", Participants: []tcc.Participant{{Name: "stock", Try: "http://127.0.0.1:1/try", Confirm: "http://127.0.0.1:1/confirm", Cancel: "http://127.0.0.1:1/cancel"}}}
	spec, err := ts.Saga()
	require.NoError(t, err)
	raw, err := json.Marshal(spec)
	require.NoError(t, err)
	now := time.Now()
	d := &dtx.TxDetail{Tx: dtx.Tx{GID: "tcc-1", Pattern: dtx.PatternTCC, Status: dtx.StatusSucceeded, Spec: raw, CreatedAt: now, UpdatedAt: now}}
	for i, st := range spec.Steps {
		d.Branches = append(d.Branches, dtx.Branch{Index: i, Name: st.Name, Action: dtx.BranchSucceeded, ActionAttempts: 1})
	}
	var out bytes.Buffer
	printSequence(&out, d, false)
	text := out.String()
	require.Contains(t, text, "tcc-1  TCC  SUCCEEDED")
	require.Contains(t, text, "try succeeded (1 call), cancel ")
	require.Contains(t, text, "confirm succeeded (1 call)")
	require.NotContains(t, text, "action ")
}

// TestBuildVersion: the version names the module version, the VCS
// revision (cut to 12 characters, +dirty when modified) and Go.
func TestBuildVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	require.Equal(t, "v1.2.3 (0123456789ab+dirty) go1.26", buildVersion(bi))
	require.Equal(t, "(devel) go1.26", buildVersion(&debug.BuildInfo{GoVersion: "go1.26"}))
}

// TestUsage_ExampleForEveryCommand: help lists every command with a
// one-line description and an example that starts with its name.
func TestUsage_ExampleForEveryCommand(t *testing.T) {
	var out bytes.Buffer
	usage(&out)
	for _, c := range commands {
		require.NotContains(t, c.summary, "\n", c.name)
		require.True(t, strings.HasPrefix(c.example, "dtx "+c.name), c.name)
		require.Contains(t, out.String(), "e.g. "+c.example)
	}
}
