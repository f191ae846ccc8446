package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/internal/atomicfile"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/internal/tracing"
	"github.com/dtxhq/dtx/tcc"
)

func runShop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx shop", flag.ContinueOnError)
	coordURL := fs.String("coordinator", "http://127.0.0.1:8480", "coordinator API URL")
	dir := fs.String("dir", "dtx-data/shop", "directory of the services' SQLite files")
	orderDSN := fs.String("order-db", "", "order service database (default: SQLite in --dir; or postgres://…)")
	inventoryDSN := fs.String("inventory-db", "", "inventory service database (default: SQLite in --dir; or postgres://…)")
	paymentDSN := fs.String("payment-db", "", "payment service database (default: SQLite in --dir; or postgres://…)")
	orderAddr := fs.String("order-addr", "127.0.0.1:8481", "order service listen address")
	inventoryAddr := fs.String("inventory-addr", "127.0.0.1:8482", "inventory service listen address")
	paymentAddr := fs.String("payment-addr", "127.0.0.1:8483", "payment service listen address")
	rate := fs.Float64("faults", 0, "probability that a saga call to any service is faulted")
	kinds := fs.String("fault-kinds", "all", "fault kinds: comma-separated fail,delay,lose or all")
	delay := fs.Duration("fault-delay", faults.DefaultDelay, "longest injected delay")
	seed := fs.Int64("seed", 1, "fault seed")
	branchTimeout := fs.Duration("branch-timeout", 2*time.Second, "branch timeout put into each order's saga")
	sagaTimeout := fs.Duration("saga-timeout", time.Minute, "saga timeout put into each order's saga")
	onConfirmFailure := fs.String("tcc-on-confirm-failure", tcc.ConfirmRetry, "TCC orders: what a failed confirm does (seed F9): retry (the coordinator retries it until it succeeds) or operator (it is tried once, then waits for an operator's dtx tx retry; the order stays PENDING and is listed by dtx attention)")
	relay := fs.String("relay", shop.RelayPolling, "with --broker: how each service's outbox is published: polling (read the outbox table) or tailing (read PostgreSQL's logical replication stream, a slot per service; needs --order-db, --inventory-db and --payment-db on PostgreSQL with wal_level=logical)")
	sequentialTCC := fs.Bool("tcc-sequential", false, "run each TCC order's tries, then its confirms, one after another (inventory, then payment) instead of in parallel")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	readyFile := fs.String("ready-file", "", "write the three service URLs to this file once serving")
	pattern := fs.String("pattern", order.PatternSaga, "how new orders are fulfilled: "+strings.Join(order.Patterns, ", "))
	statsFile := fs.String("stats-file", "", "keep the injected fault counts (JSON) in this file, rewritten every 100ms and on exit")
	brokerSpec := fs.String("broker", "", "message broker for the choreography pattern: embedded (NATS in this process, files in --dir), nats://host:port or kafka://host:port")
	callKeyFile := fs.String("call-key-file", "", "file of the key(s) the services verify branch calls with (callsig format, see dtx keygen; default $"+open.CallKeyEnv+"; none: unsigned calls are accepted)")
	brokerReplicas := fs.Int("broker-replicas", 1, "with --broker nats://a,nats://b,nats://c (a NATS JetStream cluster): how many nodes keep a copy of each stream the shop creates (1 to 5; 3 survives the loss of any one node)")
	kafkaSession := fs.Duration("kafka-session-timeout", 0, "with --broker kafka://: how long the group waits for a killed shop's heartbeats before its partitions move on (0: the client's 45s; the Kafka server allows 6s and up by default)")
	consumerAttempts := fs.Int("consumer-max-attempts", shop.DefaultConsumerMaxAttempts, "choreography: attempts of a failing event before it is dead-lettered (seed: 3)")
	consumerDelay := fs.Duration("consumer-retry-delay", shop.DefaultConsumerRetryDelay, "choreography: least wait between two attempts of a failing event (seed: 1s)")
	outboxAttempts := fs.Int("outbox-max-attempts", 0, "choreography: failed publishes of an event before the relay gives it up as FAILED and dead-letters it (0: retry until the broker takes it; seed: 5)")
	lockURL := fs.String("lock", "", "guard each placement of a draft order (POST /order/place) with a Redis lock on order:{id}: redis://host:port (default: no lock; the idempotency key already prevents duplicates)")
	lockTTL := fs.Duration("lock-ttl", 0, "lifetime of a --lock lock, longer than the slowest placement (default 2m)")
	otlpEndpoint := fs.String("otlp-endpoint", "", "export OpenTelemetry spans (branch calls served, outbox and inbox messages) over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (default $"+tracing.EnvEndpoint+"; none: tracing is off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *otlpEndpoint != "" {
		if err := tracing.CheckEndpoint(*otlpEndpoint); err != nil {
			return usageError{"--otlp-endpoint: " + err.Error()}
		}
	}
	verifier, err := callVerifier(*callKeyFile)
	if err != nil {
		return err
	}
	if *onConfirmFailure != tcc.ConfirmRetry && *onConfirmFailure != tcc.ConfirmOperator {
		return usagef("--tcc-on-confirm-failure %q: want %s or %s", *onConfirmFailure, tcc.ConfirmRetry, tcc.ConfirmOperator)
	}
	if *rate < 0 || *rate > 1 {
		return usagef("faults must be a rate between 0 and 1")
	}
	ks, err := faults.ParseKinds(*kinds)
	if err != nil {
		return usageError{err.Error()}
	}
	if !slices.Contains(order.Patterns, *pattern) {
		return usagef("pattern %q is not available (available: %s)", *pattern, strings.Join(order.Patterns, ", "))
	}
	if *lockURL != "" && !strings.HasPrefix(*lockURL, "redis://") && !strings.HasPrefix(*lockURL, "rediss://") && !strings.HasPrefix(*lockURL, "unix://") {
		return usagef("--lock must be a redis://host:port URL")
	}
	if *lockTTL < 0 {
		return usagef("--lock-ttl must not be negative")
	}
	if *brokerReplicas < 1 || *brokerReplicas > 5 {
		return usagef("--broker-replicas %d: want 1 to 5", *brokerReplicas)
	}
	if *pattern == order.PatternChoreography && *brokerSpec == "" {
		return usagef("the choreography pattern needs --broker")
	}
	if *kafkaSession < 0 || (*kafkaSession > 0 && *kafkaSession < time.Second) {
		return usagef("kafka-session-timeout must be 0 or at least 1s")
	}
	if *consumerAttempts < 1 || *consumerDelay < 0 || *outboxAttempts < 0 {
		return usagef("consumer-max-attempts must be at least 1, consumer-retry-delay and outbox-max-attempts not negative")
	}
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	tr, err := startTracing(ctx, *otlpEndpoint, "dtx-shop", log)
	if err != nil {
		return err
	}
	defer tr.Shutdown(context.WithoutCancel(ctx))
	if verifier == nil {
		log.Warn("the services accept unsigned branch calls: anyone who reaches them can compensate or cancel an order; give the coordinator's key with --call-key-file or $" + open.CallKeyEnv)
	}
	var events broker.Broker
	if *brokerSpec != "" {
		b, label, err := open.BrokerWith(ctx, *brokerSpec, *dir, open.BrokerOptions{KafkaSessionTimeout: *kafkaSession, Replicas: *brokerReplicas})
		if err != nil {
			return err
		}
		defer b.Close()
		events = b
		log.Info("broker", "broker", label)
	}
	fc := func(salt int64) faults.Config {
		return faults.Config{Rate: *rate, Kinds: ks, Delay: *delay, Seed: *seed*7919 + salt}
	}
	sh, err := shop.Start(ctx, shop.Config{
		Dir: *dir, OrderDSN: *orderDSN, InventoryDSN: *inventoryDSN, PaymentDSN: *paymentDSN,
		OrderAddr: *orderAddr, InventoryAddr: *inventoryAddr, PaymentAddr: *paymentAddr,
		CoordinatorURL: *coordURL, Pattern: *pattern, Broker: events,
		OrderFaults: fc(1), InventoryFaults: fc(2), PaymentFaults: fc(3),
		BranchTimeout: *branchTimeout, SagaTimeout: *sagaTimeout, Logger: log,
		CallVerifier: verifier, SequentialTCC: *sequentialTCC, TCCOnConfirmFailure: *onConfirmFailure, Relay: *relay,
		ConsumerMaxAttempts: *consumerAttempts, ConsumerRetryDelay: *consumerDelay, OutboxMaxAttempts: *outboxAttempts,
		LockURL: *lockURL, LockTTL: *lockTTL,
	})
	if err != nil {
		return err
	}
	defer sh.Close(context.Background())
	defer sh.KeepFaultStats(*statsFile)()
	fmt.Printf("order %s\ninventory %s\npayment %s\n", sh.OrderURL(), sh.InventoryURL(), sh.PaymentURL())
	if *readyFile != "" {
		if err := atomicfile.Write(*readyFile, fmt.Sprintf("%s\n%s\n%s\n", sh.OrderURL(), sh.InventoryURL(), sh.PaymentURL())); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}
