package brokerha_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dtxhq/dtx/broker/kafkabroker"
)

// TestKafkaCluster_OutboxInbox runs outbox relay → Kafka → inbox on
// franz-go's kfake with three brokers while events keep coming, and moves
// partition leadership under it: each partition to the next broker in
// turn, a random leader election for all partitions, the group
// coordinator to another broker, and each broker in turn removed from the
// cluster (its partitions go to the others) and a new one added. Every
// event is applied exactly once, each key's in order. kfake keeps one copy
// of each partition whatever the replication factor, so what it cannot
// model is a broker crash that loses data or an unclean election; see the
// README.
func TestKafkaCluster_OutboxInbox(t *testing.T) {
	const topic = "ha-events"
	const partitions = 4
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, topic))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	b, err := kafkabroker.Connect(ctxT(t), kc.ListenAddrs(), kafkabroker.Config{
		Partitions: partitions, ReplicationFactor: 3,
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond,
		CommitInterval: 100 * time.Millisecond,
		ClientOptions:  []kgo.Opt{kgo.HeartbeatInterval(200 * time.Millisecond)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	p := newPipeline(t, b, topic, 8)
	ctx := ctxT(t)
	start := time.Now()
	stop := p.produce(5 * time.Millisecond)
	p.progress(ctx, 20, "before the moves")

	moves := 0
	fault := func(what string, move func() error) {
		t.Helper()
		p.pub.fault(true)
		require.NoError(t, move(), what)
		moves++
		p.progress(ctx, 30, what)
		p.pub.fault(false)
	}
	for round := range int32(3) {
		fault("partitions moved", func() error {
			for part := range int32(partitions) {
				to := (kc.LeaderFor(topic, part) + 1 + round%2) % 3
				if err := kc.MoveTopicPartition(topic, part, to); err != nil {
					return err
				}
			}
			return nil
		})
		fault("leaders shuffled", func() error { kc.ShufflePartitionLeaders(); return nil })
		fault("coordinators rehashed", func() error { kc.RehashCoordinators(); return nil })
	}
	// Each of the first three brokers removed in turn, replaced by a new one.
	for node := range int32(3) {
		fault("broker removed", func() error { return kc.RemoveNode(node) })
		fault("broker added", func() error { _, _, err := kc.AddNode(-1, 0); return err })
	}
	total := stop()
	p.check(ctx, total)
	during, pause := p.pub.figures()
	t.Logf("%d events in %v across %d leadership moves; %d published during the moves; longest relay pause then %v",
		total, time.Since(start).Round(time.Millisecond), moves, during, pause.Round(time.Millisecond))
}
