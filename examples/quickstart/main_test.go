package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRun runs the README's quickstart: the first saga succeeds, the second
// is refused by the wallet and compensated, so only the first order's stock
// and money are gone.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, t.TempDir()))
	require.Equal(t, "order-1: succeeded\norder-2: failed\nstock left: 8, wallet left: 70\n", out.String())
}
