package adversarial_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// limitsStep is one saga step as JSON.
func limitsStep(name, action, compensate string) map[string]any {
	m := map[string]any{"compensate": compensate}
	if name != "" {
		m["name"] = name
	}
	if action != "" {
		m["action"] = action
	}
	return m
}

// limitsNotStored checks that gid was not recorded.
func limitsNotStored(t *testing.T, s *server, gid string) {
	t.Helper()
	r := do(t, http.MethodGet, s.URL+"/v1/transactions/"+gid, "", nil, nil)
	require.Equal(t, http.StatusNotFound, r.Status, "gid %s: %s", gid, r.Body)
}

// Findings 2, 6 and 1 (timeouts): every field of a submission is bounded;
// a submission past a limit is a 400 whose message names the field and
// the limit, and nothing is stored. The invalid specs that used to be
// accepted with 201 (control characters in the gid, port 99999,
// branch_timeout 1ns, timeout 1000000h, broker:// without a broker) are
// among them.
func TestLimits_OversizedAndInvalidFieldsRefused(t *testing.T) {
	s := startServer(t, serverOpts{})
	const url = "http://127.0.0.1:9/a"
	one := []any{limitsStep("a", url, url)}
	many := make([]any, 65)
	for i := range many {
		many[i] = limitsStep("", url, url)
	}
	big := strings.Repeat("n", 3_500_000)
	tests := []struct {
		name string
		path string
		body map[string]any
		want []string
	}{
		{"GIDControlChars", "/v1/sagas", map[string]any{"gid": "lim-\x01\x7f", "steps": one},
			[]string{`gid "lim-\x01\x7f": byte 4 is '\x01'`, "letters, digits and . _ : -"}},
		{"GIDTooLong", "/v1/sagas", map[string]any{"gid": strings.Repeat("g", 129), "steps": one},
			[]string{"gid is 129 bytes long; the limit is 128"}},
		{"GIDWithSpace", "/v1/sagas", map[string]any{"gid": "lim a", "steps": one}, []string{`byte 3 is ' '`}},
		{"HugeStepName", "/v1/sagas", map[string]any{"gid": "lim-name", "steps": []any{limitsStep(big, url, url)}},
			[]string{"steps[0].name is 3500000 bytes long; the limit is 128"}},
		{"StepNameControlChars", "/v1/sagas", map[string]any{"gid": "lim-name2", "steps": []any{limitsStep("a\x1b[2J", url, url)}},
			[]string{`steps[0].name "a\x1b[2J" contains a control character`}},
		{"URLTooLong", "/v1/sagas", map[string]any{"gid": "lim-url", "steps": []any{limitsStep("a", url+"?"+strings.Repeat("q", 3000), url)}},
			[]string{"step 0 (a): URL is 3021 bytes long; the limit is 2048"}},
		{"Port99999", "/v1/sagas", map[string]any{"gid": "lim-port", "steps": []any{limitsStep("a", "http://127.0.0.1:99999/a", url)}},
			[]string{`port "99999" is out of range 1-65535`}},
		{"BranchTimeout1ns", "/v1/sagas", map[string]any{"gid": "lim-1ns", "branch_timeout": "1ns", "steps": one},
			[]string{"branch_timeout: 1ns is below the minimum of 10ms"}},
		{"Timeout1000000h", "/v1/sagas", map[string]any{"gid": "lim-huge", "timeout": "1000000h", "steps": one},
			[]string{"timeout: 1000000h0m0s is above this server's maximum of 24h0m0s"}},
		{"BranchTimeout1000000h", "/v1/sagas", map[string]any{"gid": "lim-huge2", "branch_timeout": "1000000h", "steps": one},
			[]string{"branch_timeout: 1000000h0m0s is above this server's maximum of 5m0s"}},
		{"Timeout1e300", "/v1/sagas", map[string]any{"gid": "lim-1e300", "timeout": 1e300, "steps": one},
			[]string{"duration 1e+300 is a bare number", `such as "1e+300s"`}},
		{"TimeoutBareNumber", "/v1/sagas", map[string]any{"gid": "lim-5", "timeout": 5, "steps": one},
			[]string{`duration 5 is a bare number: write a Go duration string with its unit, such as "5s" or "5ms"`}},
		{"PayloadTooLarge", "/v1/sagas", map[string]any{"gid": "lim-payload", "steps": []any{map[string]any{
			"name": "a", "action": url, "compensate": url, "payload": strings.Repeat("p", 70_000)}}},
			[]string{"step 0 (a): payload is 70002 bytes; the limit is 65536"}},
		{"TooManySteps", "/v1/sagas", map[string]any{"gid": "lim-steps", "steps": many}, []string{"at most 64 steps, got 65"}},
		{"OpNameTooLong", "/v1/sagas", map[string]any{"gid": "lim-op", "steps": []any{map[string]any{
			"name": "a", "action": url, "compensate": url, "action_op": strings.Repeat("x", 100_000)}}},
			[]string{"operation name", "(100000 bytes)", "must be 1-32 lowercase letters"}},
		{"BrokerWithoutBroker", "/v1/sagas", map[string]any{"gid": "lim-broker", "steps": []any{limitsStep("a", "broker://inventory", url)}},
			[]string{"step 0 (a) action:", `"broker://inventory" must be http or https`}},
		{"TCCHugeName", "/v1/tcc", map[string]any{"gid": "lim-tcc", "participants": []any{map[string]any{
			"name": big, "try": url, "confirm": url, "cancel": url}}},
			[]string{"participants[0].name is 3500000 bytes long; the limit is 120"}},
		{"XAPort99999", "/v1/xa", map[string]any{"gid": "lim-xa", "branch_timeout": "1ns", "participants": []any{map[string]any{
			"name": "db", "try": "http://127.0.0.1:99999/p", "confirm": url, "cancel": url}}},
			[]string{`port "99999" is out of range`, "branch_timeout: 1ns is below the minimum of 10ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postJSON(t, s.URL+tt.path, tt.body)
			requireProblem(t, r, http.StatusBadRequest, tt.want...)
			require.Less(t, len(r.Body), 4096, "the message stays small: %.300s", r.Body)
			if gid, _ := tt.body["gid"].(string); gid != "" && !strings.ContainsAny(gid, "\x01 ") && len(gid) <= 128 {
				limitsNotStored(t, s, gid)
			}
		})
	}
	require.True(t, s.Healthy())
}

// TestLimits_ServerMaxTimeoutFlags: --max-timeout and --max-branch-timeout
// set the maxima; a submission at them is accepted, above them refused.
func TestLimits_ServerMaxTimeoutFlags(t *testing.T) {
	s := startServer(t, serverOpts{Args: []string{"--max-timeout=2m", "--max-branch-timeout=1s"}})
	steps := []any{map[string]any{"compensate": "http://127.0.0.1:9/c"}} // compensation only: no call forward
	r := postJSON(t, s.URL+"/v1/sagas", map[string]any{"gid": "max-over", "timeout": "3m", "branch_timeout": "2s", "steps": steps})
	requireProblem(t, r, http.StatusBadRequest, "timeout: 3m0s is above this server's maximum of 2m0s",
		"branch_timeout: 2s is above this server's maximum of 1s")
	r = postJSON(t, s.URL+"/v1/sagas", map[string]any{"gid": "max-at", "timeout": "2m", "branch_timeout": "1s", "steps": steps})
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
}

// Finding 2: 20 sagas with the largest fields the limits allow (a body of
// almost 4 MB each) → the list call carries summaries and stays small,
// the detail endpoint still returns the full record, and the server stays
// healthy.
func TestLimits_ListCarriesSummaries(t *testing.T) {
	s := startServer(t, serverOpts{})
	const n = 20
	url := "http://127.0.0.1:9/undo?" + strings.Repeat("u", 2048-len("http://127.0.0.1:9/undo?"))
	payload := `"` + strings.Repeat("p", 55_000) + `"`
	var submitted int
	for i := 0; i < n; i++ {
		steps := make([]any, 64)
		for j := range steps {
			// Compensation-only steps: the saga succeeds without a call.
			steps[j] = map[string]any{
				"name":       fmt.Sprintf("%03d-%s", j, strings.Repeat("n", 124)),
				"compensate": url, "payload": json.RawMessage(payload),
			}
		}
		gid := fmt.Sprintf("big-%02d-%s", i, strings.Repeat("g", 128-7))
		b, err := json.Marshal(map[string]any{"gid": gid, "timeout": "24h", "branch_timeout": "5m", "steps": steps})
		require.NoError(t, err)
		submitted += len(b)
		r := do(t, http.MethodPost, s.URL+"/v1/sagas", "application/json", b, nil)
		require.Equal(t, http.StatusCreated, r.Status, "body: %.500s", r.Body)
	}
	require.Greater(t, submitted, n*3_500_000, "the sagas are as large as the limits allow")

	list := do(t, http.MethodGet, s.URL+"/v1/transactions?limit=100", "", nil, nil)
	require.Equal(t, http.StatusOK, list.Status)
	require.Less(t, len(list.Body), 32<<10, "the list call carries summaries, not specs")
	var lr struct {
		Transactions []map[string]json.RawMessage `json:"transactions"`
	}
	require.NoError(t, json.Unmarshal(list.Body, &lr))
	require.Len(t, lr.Transactions, n)
	for _, tx := range lr.Transactions {
		require.NotContains(t, tx, "spec")
		require.Contains(t, tx, "gid")
		require.Contains(t, tx, "status")
	}

	var gid string
	require.NoError(t, json.Unmarshal(lr.Transactions[0]["gid"], &gid))
	detail := do(t, http.MethodGet, s.URL+"/v1/transactions/"+gid, "", nil, nil)
	require.Equal(t, http.StatusOK, detail.Status)
	var d struct {
		Spec struct {
			Steps []struct {
				Name    string          `json:"name"`
				Payload json.RawMessage `json:"payload"`
			} `json:"steps"`
		} `json:"spec"`
	}
	require.NoError(t, json.Unmarshal(detail.Body, &d))
	require.Len(t, d.Spec.Steps, 64, "the detail endpoint has the full record")
	require.Len(t, d.Spec.Steps[63].Name, 128)
	require.Equal(t, payload, string(d.Spec.Steps[63].Payload))
	require.True(t, s.Healthy())
}
