package demo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dtxhq/dtx/examples/shop/demo"
)

// The choreographed shop over the Kafka protocol, against the in-process
// test broker: every order is accounted for, nothing is stuck, no
// invariant is violated, and the output says what the broker is.
func TestRunChoreographyOverKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	res, err := demo.Run(ctx, demo.Config{
		Pattern: "choreography", Broker: demo.BrokerKafka, Orders: 30, Concurrency: 4, FaultRate: 0.2, Seed: 3,
		Dir: t.TempDir(), QuiesceTimeout: time.Minute, Out: &out,
	})
	require.NoError(t, err)
	require.True(t, res.OK(), "violations %v, stuck %v", res.ViolationList, res.StuckList)
	require.Equal(t, 30, res.Orders)
	require.Equal(t, res.Orders, res.Completed+res.Cancelled)
	require.Positive(t, res.Cancelled, "the mix refuses some orders: their compensations ran over Kafka")
	require.Positive(t, res.FaultsInjected["fail"]+res.FaultsInjected["lose"])
	require.Contains(t, out.String(), "in-process test broker")
	require.Contains(t, out.String(), "not a production Kafka")
	require.Contains(t, out.String(), "127.0.0.1:")
}

// --broker kafka://host:port runs against a cluster the demo did not
// start (here a kfake cluster of the test's own, on loopback).
func TestRunChoreographyOverKafkaAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	spec := "kafka://" + strings.Join(cluster.ListenAddrs(), ",")
	var out strings.Builder
	res, err := demo.Run(ctx, demo.Config{
		Pattern: "choreography", Broker: spec, Orders: 10, Concurrency: 4, FaultRate: 0.2, Seed: 4,
		Dir: t.TempDir(), QuiesceTimeout: time.Minute, Out: &out,
	})
	require.NoError(t, err)
	require.True(t, res.OK(), "violations %v, stuck %v", res.ViolationList, res.StuckList)
	require.Equal(t, 10, res.Completed+res.Cancelled)
	require.Contains(t, out.String(), "Kafka cluster "+spec)
	require.NotContains(t, out.String(), "in-process test broker")
}

func TestBrokerChoice(t *testing.T) {
	base := demo.Config{Pattern: "choreography", Orders: 1, Concurrency: 1}
	for _, ok := range []string{"", "embedded", "kafka", "kafka://127.0.0.1:9092", "kafka://a:1,b:2"} {
		c := base
		c.Broker = ok
		require.NoError(t, c.Validate(), ok)
	}
	for _, bad := range []string{"nats", "kafka://", "kafka://host", "redis://x:1"} {
		c := base
		c.Broker = bad
		require.Error(t, c.Validate(), bad)
	}
	c := base
	c.Pattern, c.Broker = "saga", "kafka"
	require.ErrorContains(t, c.Validate(), "choreography pattern only")
}
