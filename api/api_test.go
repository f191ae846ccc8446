package api_test

import (
	"encoding/json"
	"sort"
	"testing"

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
	require.Equal(t, with("branches", "why"), keys(t, api.AttentionItem{}))
	require.Equal(t, []string{"min_attempts", "older_than", "transactions"}, keys(t, api.AttentionResponse{}))
	require.Equal(t, []string{"created_at", "gid", "pattern", "status", "updated_at"}, keys(t, api.TxChange{}))
	require.Equal(t, []string{"counts"}, keys(t, api.CountsEvent{}))
	require.Equal(t, []string{"active", "owner", "status"}, keys(t, api.Health{}))
}
