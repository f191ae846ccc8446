package open

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/kafkabroker"
	"github.com/dtxhq/dtx/broker/natsbroker"
)

// Broker opens the broker named by spec: "embedded" (NATS JetStream in
// this process, files in dir/nats), "nats://host:port" (an external NATS
// server with JetStream; "nats://a:4222,nats://b:4222" for the nodes of a
// cluster) or "kafka://host:port[,host:port…]" (Apache Kafka).
func Broker(ctx context.Context, spec, dir string) (broker.Broker, string, error) {
	return BrokerWith(ctx, spec, dir, BrokerOptions{})
}

// BrokerOptions tune the broker Broker opens; zero values keep the
// adapters' defaults.
type BrokerOptions struct {
	// KafkaSessionTimeout is kafkabroker.Config.SessionTimeout.
	KafkaSessionTimeout time.Duration
	// Replicas is natsbroker.Config.Replicas for nats:// (the replication
	// of the streams the broker creates on a cluster; 0: 1).
	Replicas int
	// Partitions is the partition count of the streams (NATS) or topics
	// (Kafka) the broker creates; 0: the adapter's default. Existing ones
	// keep theirs.
	Partitions int
}

// BrokerWith is Broker with options.
func BrokerWith(ctx context.Context, spec, dir string, o BrokerOptions) (broker.Broker, string, error) {
	switch {
	case spec == "embedded":
		d := filepath.Join(dir, "nats")
		b, err := natsbroker.OpenEmbedded(ctx, d, natsbroker.Config{Partitions: o.Partitions})
		if err != nil {
			return nil, "", fmt.Errorf("embedded NATS: %w", err)
		}
		return b, "embedded NATS JetStream (files in " + d + ")", nil
	case strings.HasPrefix(spec, "nats://"):
		b, err := natsbroker.Connect(ctx, spec, natsbroker.Config{Replicas: o.Replicas, Partitions: o.Partitions})
		if err != nil {
			return nil, "", fmt.Errorf("NATS %s: %w", spec, err)
		}
		return b, "NATS " + spec, nil
	case strings.HasPrefix(spec, "kafka://"):
		seeds := strings.Split(strings.TrimPrefix(spec, "kafka://"), ",")
		b, err := kafkabroker.Connect(ctx, seeds, kafkabroker.Config{SessionTimeout: o.KafkaSessionTimeout, Partitions: int32(o.Partitions)})
		if err != nil {
			return nil, "", fmt.Errorf("Kafka %s: %w", spec, err)
		}
		return b, "Kafka " + spec, nil
	}
	return nil, "", specf("broker %q: want embedded, nats://host:port or kafka://host:port", spec)
}
