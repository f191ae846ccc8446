package api_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
)

// keys returns the top-level field names v encodes to.
func keys(t *testing.T, v any) []string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &m))
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The field names are the API: clients in other languages and the
// dashboard depend on them.
func TestFieldNames(t *testing.T) {
	txKeys := keys(t, dtx.Tx{})
	with := func(extra ...string) []string {
		out := append(append([]string{}, txKeys...), extra...)
		sort.Strings(out)
		return out
	}
	require.Equal(t, []string{"counts", "transactions"}, keys(t, api.ListResponse{}))
	require.Equal(t, []string{}, keys(t, api.AbortRequest{}))
	require.Equal(t, []string{"reason"}, keys(t, api.AbortRequest{Reason: "r"}))
	require.Equal(t, with("branches", "retried"), keys(t, api.RetryResponse{}))
	require.Equal(t, []string{"branches", "created_at", "gid", "pattern", "status", "updated_at", "why"}, keys(t, api.AttentionItem{}))
	require.Equal(t, []string{"min_attempts", "older_than", "transactions"}, keys(t, api.AttentionResponse{}))
	require.Equal(t, []string{"created_at", "gid", "pattern", "status", "updated_at"}, keys(t, api.TxChange{}))
	require.Equal(t, []string{"counts"}, keys(t, api.CountsEvent{}))
	require.Equal(t, []string{"created_at", "gid", "pattern", "status", "updated_at"}, keys(t, api.TxSummary{}))
	require.Equal(t, []string{"created_at", "deadline", "gid", "lease_owner", "pattern", "reason", "status", "updated_at"},
		keys(t, api.TxSummary{Reason: "r", Deadline: time.Unix(1, 0), LeaseOwner: "o"}))
	require.Equal(t, []string{"active", "owner", "status"}, keys(t, api.Health{}))
}

// TestSummarize: a summary carries no spec and a bounded reason, cut on a
// rune boundary.
func TestSummarize(t *testing.T) {
	now := time.Now()
	tx := dtx.Tx{GID: "g", Pattern: dtx.PatternSaga, Status: dtx.StatusFailed, Reason: strings.Repeat("é", 1000),
		Spec: json.RawMessage(`{"steps":[{"name":"` + strings.Repeat("x", 1<<20) + `"}]}`), CreatedAt: now, UpdatedAt: now}
	s := api.Summarize(&tx)
	require.LessOrEqual(t, len(s.Reason), api.MaxSummaryReason)
	require.True(t, utf8.ValidString(s.Reason))
	require.True(t, strings.HasSuffix(s.Reason, "…"))
	data, err := json.Marshal(api.Summaries([]dtx.Tx{tx}))
	require.NoError(t, err)
	require.Less(t, len(data), 1024)
	require.Equal(t, "reason", api.Summarize(&dtx.Tx{Reason: "reason"}).Reason)
	require.NotNil(t, api.Summaries(nil))
}
