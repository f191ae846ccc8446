package saga_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

const (
	actURL  = "http://svc.local/act"
	compURL = "http://svc.local/undo"
)

// st is a compensatable step with the given dependencies.
func st(after ...int) saga.Step {
	return saga.Step{Action: actURL, Compensate: compURL, After: after}
}

// retriable is a step without compensation.
func retriable(after ...int) saga.Step {
	return saga.Step{Action: actURL, After: after}
}

func TestNormalize_ValidSpecsGetDefaults(t *testing.T) {
	tests := []struct {
		name  string
		spec  saga.Spec
		names []string
	}{
		{
			name:  "SequentialUnnamed",
			spec:  saga.Spec{Steps: []saga.Step{st(), st(), retriable()}},
			names: []string{"step-0", "step-1", "step-2"},
		},
		{
			name: "SequentialNamedKeepsNames",
			spec: saga.Spec{GID: "order-42", Steps: []saga.Step{
				{Name: "reserve", Action: actURL, Compensate: compURL, Payload: json.RawMessage(`{"sku":"x","qty":2}`)},
				{Action: "https://pay.example:8443/charge", Compensate: "https://pay.example:8443/refund"},
				{Name: "ship", Action: actURL},
			}},
			names: []string{"reserve", "step-1", "ship"},
		},
		{
			name:  "CompensationOnlyStep",
			spec:  saga.Spec{Steps: []saga.Step{{Compensate: compURL}, st()}},
			names: []string{"step-0", "step-1"},
		},
		{
			name:  "ParallelDiamond",
			spec:  saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(0), st(0), retriable(1, 2)}},
			names: []string{"step-0", "step-1", "step-2", "step-3"},
		},
		{
			name:  "ParallelForwardReferences",
			spec:  saga.Spec{Parallel: true, Steps: []saga.Step{st(2), st(), st(1)}},
			names: []string{"step-0", "step-1", "step-2"},
		},
		{
			name:  "ParallelRetriableAfterRetriable",
			spec:  saga.Spec{Parallel: true, Steps: []saga.Step{st(), retriable(0), retriable(1), retriable()}},
			names: []string{"step-0", "step-1", "step-2", "step-3"},
		},
		{
			name:  "MaxSteps",
			spec:  saga.Spec{Steps: make([]saga.Step, saga.MaxSteps)},
			names: nil,
		},
		{
			name:  "LongestGID",
			spec:  saga.Spec{GID: strings.Repeat("g", saga.MaxGIDLength), Steps: []saga.Step{st()}},
			names: []string{"step-0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			if tt.name == "MaxSteps" {
				for i := range spec.Steps {
					spec.Steps[i] = st()
				}
			}
			require.NoError(t, spec.Normalize())
			require.Equal(t, dtx.Duration(saga.DefaultTimeout), spec.Timeout)
			require.Equal(t, dtx.Duration(saga.DefaultBranchTimeout), spec.BranchTimeout)
			for i, s := range spec.Steps {
				require.NotEmpty(t, s.Name, "step %d", i)
				if tt.names != nil {
					require.Equal(t, tt.names[i], s.Name)
				}
			}
			// Normalizing twice changes nothing.
			before := spec.Digest()
			require.NoError(t, spec.Normalize())
			require.Equal(t, before, spec.Digest())
		})
	}
}

func TestNormalize_KeepsExplicitTimeouts(t *testing.T) {
	spec := saga.Spec{Steps: []saga.Step{st()},
		Timeout: dtx.Duration(3 * time.Second), BranchTimeout: dtx.Duration(250 * time.Millisecond)}
	require.NoError(t, spec.Normalize())
	require.Equal(t, 3*time.Second, spec.Timeout.Std())
	require.Equal(t, 250*time.Millisecond, spec.BranchTimeout.Std())
}

func TestNormalize_Invalid(t *testing.T) {
	many := make([]saga.Step, saga.MaxSteps+1)
	for i := range many {
		many[i] = st()
	}
	tests := []struct {
		name string
		spec saga.Spec
		want string // substring of the error message
	}{
		{"NoSteps", saga.Spec{}, "at least one step"},
		{"EmptyStepList", saga.Spec{Steps: []saga.Step{}}, "at least one step"},
		{"TooManySteps", saga.Spec{Steps: many}, fmt.Sprintf("at most %d steps, got %d", saga.MaxSteps, saga.MaxSteps+1)},
		{"StepWithoutURLs", saga.Spec{Steps: []saga.Step{st(), {Name: "empty"}}}, "step 1 (empty): needs an action or a compensate URL"},
		{"RelativeURL", saga.Spec{Steps: []saga.Step{{Action: "/act"}}}, `URL "/act" is not absolute`},
		{"URLWithoutScheme", saga.Spec{Steps: []saga.Step{{Action: "svc.local/act"}}}, "is not absolute"},
		{"HTTPSWithoutHost", saga.Spec{Steps: []saga.Step{{Action: actURL, Compensate: "https:/undo"}}}, "has no host"},
		{"URLWithoutHost", saga.Spec{Steps: []saga.Step{{Action: "http:///act"}}}, "has no host"},
		{"UnparsableURL", saga.Spec{Steps: []saga.Step{{Name: "bad", Action: "http://[::1/act"}}}, `step 0 (bad): invalid URL "http://[::1/act"`},
		{"InvalidPayload", saga.Spec{Steps: []saga.Step{{Action: actURL, Payload: json.RawMessage(`{"a":`)}}}, "payload is not valid JSON"},
		{"PayloadTooLarge", saga.Spec{Steps: []saga.Step{{Action: actURL, Payload: json.RawMessage(`"` + strings.Repeat("x", saga.MaxPayloadSize) + `"`)}}}, fmt.Sprintf("payload is %d bytes; the limit is %d", saga.MaxPayloadSize+2, saga.MaxPayloadSize)},
		{"NegativeTimeout", saga.Spec{Timeout: dtx.Duration(-time.Second), Steps: []saga.Step{st()}}, "timeout: -1s is negative"},
		{"NegativeBranchTimeout", saga.Spec{BranchTimeout: dtx.Duration(-1), Steps: []saga.Step{st()}}, "branch_timeout: -1ns is negative"},
		{"AfterWithoutParallel", saga.Spec{Steps: []saga.Step{st(), st(0)}}, "step 1 (step-1): after is only allowed with parallel"},
		{"AfterOutOfRange", saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(2)}}, "after refers to invalid step 2"},
		{"AfterNegative", saga.Spec{Parallel: true, Steps: []saga.Step{st(-1)}}, "after refers to invalid step -1"},
		{"AfterSelf", saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(1)}}, "step 1 (step-1): after refers to invalid step 1"},
		{"TwoCycle", saga.Spec{Parallel: true, Steps: []saga.Step{st(1), st(0)}}, "cycle"},
		{"LongCycle", saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(0, 3), st(1), st(2)}}, "cycle"},
		{"SequentialCompensatableAfterRetriable", saga.Spec{Steps: []saga.Step{st(), retriable(), st()}}, "step 2 (step-2): a compensatable step cannot follow a step without compensation"},
		{"ParallelCompensatableOnRetriable", saga.Spec{Parallel: true, Steps: []saga.Step{retriable(), st(0)}}, "compensatable step 1 depends on step 0, which has no compensation"},
		{"GIDWithSlash", saga.Spec{GID: "a/b", Steps: []saga.Step{st()}}, `gid "a/b": byte 1 is '/'; a gid holds only letters, digits and . _ : -`},
		{"GIDWithSpace", saga.Spec{GID: "a b", Steps: []saga.Step{st()}}, `byte 1 is ' '`},
		{"GIDWithNewline", saga.Spec{GID: "a\nb", Steps: []saga.Step{st()}}, `byte 1 is '\n'`},
		{"GIDWithQuery", saga.Spec{GID: "a?b", Steps: []saga.Step{st()}}, `byte 1 is '?'`},
		{"BranchOutOfRange", saga.Spec{Steps: []saga.Step{{Action: actURL, Branch: ptr(3)}}}, "step 0 (step-0): branch 3 out of range"},
		{"BranchOpTwice", saga.Spec{Steps: []saga.Step{st(), {Action: actURL, Compensate: compURL, Branch: ptr(0)}}}, `step 1 (step-1): branch 0 operation "action" is also step 0's`},
		{"GIDDotDot", saga.Spec{GID: "..", Steps: []saga.Step{st()}}, `gid ".." is a path segment`},
		{"GIDTooLong", saga.Spec{GID: strings.Repeat("g", saga.MaxGIDLength+1), Steps: []saga.Step{st()}}, fmt.Sprintf("gid is %d bytes long; the limit is %d", saga.MaxGIDLength+1, saga.MaxGIDLength)},
		{"GIDWithControlChar", saga.Spec{GID: "a\x01b", Steps: []saga.Step{st()}}, `byte 1 is '\x01'`},
		{"GIDWithHash", saga.Spec{GID: "a#b", Steps: []saga.Step{st()}}, `byte 1 is '#'`},
		{"GIDNonASCII", saga.Spec{GID: "ordér", Steps: []saga.Step{st()}}, `byte 3 is`},
		{"NameTooLong", saga.Spec{Steps: []saga.Step{{Name: strings.Repeat("n", saga.MaxNameLength+1), Action: actURL}}}, fmt.Sprintf("steps[0].name is %d bytes long; the limit is %d", saga.MaxNameLength+1, saga.MaxNameLength)},
		{"NameWithControlChar", saga.Spec{Steps: []saga.Step{{Name: "a\x1b[2Jb", Action: actURL}}}, `steps[0].name "a\x1b[2Jb" contains a control character`},
		{"NameNotUTF8", saga.Spec{Steps: []saga.Step{{Name: "a\xffb", Action: actURL}}}, "steps[0].name is not valid UTF-8"},
		{"URLTooLong", saga.Spec{Steps: []saga.Step{{Action: actURL + "?" + strings.Repeat("q", saga.MaxURLLength)}}}, fmt.Sprintf("step 0 (step-0): URL is %d bytes long; the limit is %d", len(actURL)+1+saga.MaxURLLength, saga.MaxURLLength)},
		{"PortOutOfRange", saga.Spec{Steps: []saga.Step{{Action: "http://127.0.0.1:99999/act"}}}, `port "99999" is out of range 1-65535`},
		{"PortZero", saga.Spec{Steps: []saga.Step{{Action: "http://127.0.0.1:0/act"}}}, `port "0" is out of range`},
		{"BranchTimeoutTooSmall", saga.Spec{BranchTimeout: dtx.Duration(time.Nanosecond), Steps: []saga.Step{st()}}, "branch_timeout: 1ns is below the minimum of 10ms"},
		{"TimeoutTooSmall", saga.Spec{Timeout: dtx.Duration(time.Millisecond), Steps: []saga.Step{st()}}, "timeout: 1ms is below the minimum of 10ms"},
		{"AfterTooLong", saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(make([]int, saga.MaxSteps+1)...)}}, fmt.Sprintf("steps[1].after has %d entries; the limit is %d", saga.MaxSteps+1, saga.MaxSteps)},
		{"LongOpNameQuotedShort", saga.Spec{Steps: []saga.Step{{Action: actURL, ActionOp: dtx.Op(strings.Repeat("X", 1000))}}}, "(1000 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			err := spec.Normalize()
			require.Error(t, err)
			require.ErrorIs(t, err, dtx.ErrInvalid)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestNormalize_OtherSchemes: a saga takes absolute URLs of any scheme;
// which schemes can be called, and each scheme's own rule (a broker topic,
// say), the coordinator checks against its transport (dtx.URLChecker; see
// package transport and its transports' tests).
func TestNormalize_OtherSchemes(t *testing.T) {
	spec := saga.Spec{Steps: []saga.Step{
		{Name: "order", Compensate: "broker://orders-saga-cancel"},
		{Name: "inventory", Action: "broker://inventory-deduct", Compensate: "broker://inventory-deduct-cancel"},
		{Name: "mixed", Action: actURL, Compensate: "broker://x0-9"},
		{Name: "other", Action: "ftp://svc.local/x", Compensate: "mailto:ops@example.com"},
	}}
	require.NoError(t, spec.Normalize())
}

func TestNormalize_ReportsAllProblems(t *testing.T) {
	spec := saga.Spec{
		GID:     "bad gid",
		Timeout: dtx.Duration(-time.Second),
		Steps: []saga.Step{
			{Name: "a", Action: "svc.local/a", Compensate: compURL},
			{Name: "b"},
			{Name: "c", Action: actURL, Payload: json.RawMessage(`nope`)},
			{Name: "d", Action: actURL, Compensate: compURL, After: []int{0}},
		},
	}
	err := spec.Normalize()
	require.ErrorIs(t, err, dtx.ErrInvalid)
	msg := err.Error()
	for _, want := range []string{
		`gid "bad gid"`,
		"timeout: -1s is negative",
		"step 0 (a): URL",
		"step 1 (b): needs an action",
		"step 2 (c): payload is not valid JSON",
		"step 3 (d): a compensatable step cannot follow",
		"step 3 (d): after is only allowed with parallel",
	} {
		require.Contains(t, msg, want)
	}
	// Each problem is its own error, each wrapping dtx.ErrInvalid.
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	require.Len(t, joined.Unwrap(), 7)
	for _, e := range joined.Unwrap() {
		require.ErrorIs(t, e, dtx.ErrInvalid)
	}
	// No defaults are filled into an invalid spec's timeouts.
	require.Equal(t, dtx.Duration(0), spec.BranchTimeout)
}

func TestDigest(t *testing.T) {
	mk := func(payload string) saga.Spec {
		s := saga.Spec{GID: "g-1", Steps: []saga.Step{
			{Name: "a", Action: actURL, Compensate: compURL, Payload: json.RawMessage(payload)},
			{Name: "b", Action: actURL, Compensate: compURL},
		}}
		require.NoError(t, s.Normalize())
		return s
	}
	a, b := mk(`{"n":1}`), mk(`{"n":1}`)
	require.Equal(t, a.Digest(), b.Digest(), "equal specs have equal digests")
	require.NotEmpty(t, a.Digest())

	changed := mk(`{"n":2}`)
	require.NotEqual(t, a.Digest(), changed.Digest(), "payload change")

	other := mk(`{"n":1}`)
	other.GID = "g-2"
	require.NotEqual(t, a.Digest(), other.Digest(), "gid change")

	other = mk(`{"n":1}`)
	other.Steps[1].Compensate = "http://svc.local/other"
	require.NotEqual(t, a.Digest(), other.Digest(), "URL change")

	other = mk(`{"n":1}`)
	other.Timeout = dtx.Duration(time.Second)
	require.NotEqual(t, a.Digest(), other.Digest(), "timeout change")

	// The trace context is not content: a retried submission from another
	// span is the same saga.
	other = mk(`{"n":1}`)
	other.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	require.NoError(t, other.Normalize())
	require.Equal(t, a.Digest(), other.Digest(), "traceparent is not content")

	// Explicit defaults are the same content as omitted ones.
	explicit := saga.Spec{GID: "g-1", Timeout: dtx.Duration(saga.DefaultTimeout), BranchTimeout: dtx.Duration(saga.DefaultBranchTimeout),
		Steps: []saga.Step{
			{Name: "a", Action: actURL, Compensate: compURL, Payload: json.RawMessage(`{"n":1}`)},
			{Name: "b", Action: actURL, Compensate: compURL},
		}}
	require.NoError(t, explicit.Normalize())
	require.Equal(t, a.Digest(), explicit.Digest())

	// The digest survives the JSON round trip through the store.
	raw, err := json.Marshal(&a)
	require.NoError(t, err)
	var back saga.Spec
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, a.Digest(), back.Digest())
}

func TestDeps(t *testing.T) {
	seq := saga.Spec{Steps: []saga.Step{st(), st(), st()}}
	require.Empty(t, seq.Deps(0))
	require.Equal(t, []int{0}, seq.Deps(1))
	require.Equal(t, []int{1}, seq.Deps(2))
	par := saga.Spec{Parallel: true, Steps: []saga.Step{st(), st(), st(0, 1)}}
	require.Empty(t, par.Deps(0))
	require.Empty(t, par.Deps(1))
	require.Equal(t, []int{0, 1}, par.Deps(2))
}

func ptr(i int) *int { return &i }

func TestNormalize_SharedBranchWithDistinctOps(t *testing.T) {
	spec := saga.Spec{Steps: []saga.Step{
		{Action: actURL, Compensate: compURL, ActionOp: dtx.OpTry, CompensateOp: dtx.OpCancel},
		{Action: actURL, ActionOp: dtx.OpConfirm, Branch: ptr(0)},
	}}
	require.NoError(t, spec.Normalize())
	require.Equal(t, 0, spec.Steps[1].BranchIndex(1))
	require.Equal(t, 0, spec.Steps[0].BranchIndex(0))
}

func TestNormalizeTraceParent(t *testing.T) {
	s := saga.Spec{Steps: []saga.Step{{Action: actURL, Compensate: compURL}},
		TraceParent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"}
	require.NoError(t, s.Normalize())
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", s.TraceParent, "stored in version-00 form")

	s = saga.Spec{Steps: []saga.Step{{Action: actURL, Compensate: compURL}}, TraceParent: "not-a-traceparent"}
	err := s.Normalize()
	require.ErrorIs(t, err, dtx.ErrInvalid)
	require.ErrorContains(t, err, "traceparent")
}
