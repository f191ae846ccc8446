// Package brokerha holds the tests of dtx's broker paths on a clustered
// broker: the outbox relay, inbox consumers and saga-async (the broker
// transport) through a 3-node NATS JetStream cluster with R3 streams while
// nodes are killed and restarted (internal/natscluster), and the outbox
// and inbox through a 3-broker kfake Kafka whose partition leadership
// moves. It has no code besides its tests.
package brokerha
