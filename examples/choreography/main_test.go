package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRun runs the README's choreography: the event written with the order
// reaches the stock service's inbox and is applied there.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, t.TempDir()))
	require.Equal(t, "stock reserved 2 for order o-1\n", out.String())
}
