package main

import (
	"context"
	"testing"
)

func TestShopCLI_BrokerReplicas(t *testing.T) {
	ctx := context.Background()
	requireUsage(t, runShop(ctx, []string{"--broker-replicas", "0"}), "--broker-replicas 0: want 1 to 5")
	requireUsage(t, runShop(ctx, []string{"--broker-replicas", "6"}), "--broker-replicas 6: want 1 to 5")
}
