package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/redistest"
)

func TestShopCLI_LockFlag(t *testing.T) {
	ctx := context.Background()
	requireUsage(t, runShop(ctx, []string{"--lock", "http://127.0.0.1:6379"}), "--lock must be a redis://host:port URL")
	requireUsage(t, runShop(ctx, []string{"--lock", "redis://127.0.0.1:1", "--lock-ttl", "-1s"}), "--lock-ttl must not be negative")

	// A Redis that does not answer: the shop refuses to start, in one line.
	srv := redistest.Start(t)
	srv.Stop()
	err := runShop(ctx, []string{"--lock", srv.URL(), "--dir", t.TempDir(),
		"--order-addr", "127.0.0.1:0", "--inventory-addr", "127.0.0.1:0", "--payment-addr", "127.0.0.1:0"})
	requireFailure(t, err, "shop: lock "+srv.URL())
}

func TestShopCLI_LockServes(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := t.TempDir() + "/ready"
	done := make(chan error, 1)
	go func() {
		done <- runShop(ctx, []string{"--lock", srv.URL(), "--dir", t.TempDir(), "--ready-file", ready,
			"--order-addr", "127.0.0.1:0", "--inventory-addr", "127.0.0.1:0", "--payment-addr", "127.0.0.1:0"})
	}()
	require.Eventually(t, func() bool { return fileExists(ready) }, 30*time.Second, 20*time.Millisecond, "shop ready")
	cancel()
	require.NoError(t, <-done)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
