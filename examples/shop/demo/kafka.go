package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/kafkabroker"
)

// Values of Config.Broker.
const (
	// BrokerEmbedded (or ""): NATS JetStream in this process.
	BrokerEmbedded = "embedded"
	// BrokerKafka: the Kafka protocol against franz-go's in-process test
	// cluster (kfake) on a loopback port the kernel picks. It is a test
	// broker, not a production Kafka; "kafka://host:port[,host:port…]"
	// names a real cluster instead.
	BrokerKafka = "kafka"
	// KafkaPrefix starts the address of a real Kafka cluster.
	KafkaPrefix = "kafka://"
)

// checkBroker validates Config.Broker for the pattern.
func checkBroker(spec, pattern string) error {
	switch {
	case spec == "" || spec == BrokerEmbedded:
		return nil
	case pattern != "choreography":
		return fmt.Errorf("--broker %s applies to the choreography pattern only", spec)
	case spec == BrokerKafka:
		return nil
	case strings.HasPrefix(spec, KafkaPrefix):
		for _, a := range kafkaSeeds(spec) {
			if a == "" || !strings.Contains(a, ":") {
				return fmt.Errorf("--broker %s: want kafka://host:port[,host:port…]", spec)
			}
		}
		return nil
	}
	return fmt.Errorf("broker %q: want embedded, kafka (an in-process test broker) or kafka://host:port", spec)
}

func kafkaSeeds(spec string) []string {
	return strings.Split(strings.TrimPrefix(spec, KafkaPrefix), ",")
}

// kafkaConfig retries a failed delivery quickly (a fault the demo injected
// holds only its partition) and commits often, so that the demo's flow
// moves at the pace of the embedded NATS one.
func kafkaConfig() kafkabroker.Config {
	return kafkabroker.Config{
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond, CommitInterval: 200 * time.Millisecond,
		ClientOptions: []kgo.Opt{kgo.HeartbeatInterval(500 * time.Millisecond)},
	}
}

// startKafka connects to the Kafka cluster of spec; for BrokerKafka it
// first starts an in-process kfake cluster on 127.0.0.1 with a port the
// kernel picks. It returns the broker and a line saying what it is.
func (d *Demo) startKafka(ctx context.Context, spec string) (broker.Broker, string, error) {
	seeds := kafkaSeeds(spec)
	label := "Kafka cluster " + spec
	if spec == BrokerKafka {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
		if err != nil {
			return nil, "", fmt.Errorf("in-process Kafka test broker: %w", err)
		}
		d.onClose(cluster.Close)
		seeds = cluster.ListenAddrs()
		label = fmt.Sprintf("the Kafka protocol (franz-go) against an in-process test broker (kfake on %s), not a production Kafka; --broker kafka://host:9092 uses a real cluster", strings.Join(seeds, ","))
	}
	kb, err := kafkabroker.Connect(ctx, seeds, kafkaConfig())
	if err != nil {
		return nil, "", fmt.Errorf("Kafka %s: %w", strings.Join(seeds, ","), err)
	}
	d.onClose(func() { kb.Close() })
	return kb, label, nil
}
