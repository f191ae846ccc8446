package metrics

import (
	"context"
	"maps"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dtxhq/dtx/outbox"
)

// Events exposes the event pipeline of an application (its outbox relays
// and the dead letters of its outboxes and consumers) to Prometheus, one
// series per service:
//
//	dtx_outbox_published_total{service}         counter, messages the relay published
//	dtx_outbox_publish_failures_total{service}  counter, failed publishes (each retried, or given up)
//	dtx_outbox_given_up_total{service}          counter, messages given up after RelayConfig.MaxAttempts (FAILED, in the dead letters)
//	dtx_outbox_db_errors_total{service}         counter, failed statements of the relay
//	dtx_outbox_lag_seconds{service}             gauge, age of the oldest unpublished message when the relay last looked
//	dtx_outbox_leader{service}                  gauge, 1 if this process's relay holds the lease
//	dtx_dead_letters{service,source}            gauge, from the database at scrape time (source: outbox, inbox)
//
// The counters are the relay's own (outbox.Relay.Stats), read at scrape
// time: recording costs the relay nothing more.
type Events struct {
	reg *prometheus.Registry

	mu     sync.Mutex
	relays map[string]RelayStats
	dead   map[[2]string]func(context.Context) (int, error)

	published, failures, givenUp, dbErrors, lag, leader, deadLetters *prometheus.Desc
}

// RelayStats is what Events reads from a relay (*outbox.Relay has it).
type RelayStats interface{ Stats() outbox.Stats }

// NewEvents returns the event metrics, registered in a new registry.
func NewEvents() *Events {
	l := []string{"service"}
	e := &Events{
		reg:         prometheus.NewRegistry(),
		relays:      map[string]RelayStats{},
		dead:        map[[2]string]func(context.Context) (int, error){},
		published:   prometheus.NewDesc("dtx_outbox_published_total", "Messages the outbox relay published.", l, nil),
		failures:    prometheus.NewDesc("dtx_outbox_publish_failures_total", "Failed publishes of the outbox relay (each retried, or given up).", l, nil),
		givenUp:     prometheus.NewDesc("dtx_outbox_given_up_total", "Messages the outbox relay gave up after its MaxAttempts: FAILED, in the outbox's dead letters.", l, nil),
		dbErrors:    prometheus.NewDesc("dtx_outbox_db_errors_total", "Failed database statements of the outbox relay.", l, nil),
		lag:         prometheus.NewDesc("dtx_outbox_lag_seconds", "Age of the oldest unpublished outbox message when the relay last looked (0: none).", l, nil),
		leader:      prometheus.NewDesc("dtx_outbox_leader", "1 if this process's outbox relay holds the lease.", l, nil),
		deadLetters: prometheus.NewDesc("dtx_dead_letters", "Dead letters waiting for an operator (replay or discard), by source: outbox (given-up publishes) or inbox (failed deliveries).", []string{"service", "source"}, nil),
	}
	e.reg.MustRegister(e)
	return e
}

// Registry returns the registry the metrics are in (add the Go and process
// collectors to it if the application has no other).
func (e *Events) Registry() *prometheus.Registry { return e.reg }

// Handler serves the registry in the Prometheus exposition format; a dead
// letter count that fails is left out of that scrape, the rest is served.
func (e *Events) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// WatchRelay adds service's outbox relay. A second relay for the same
// service replaces the first.
func (e *Events) WatchRelay(service string, r RelayStats) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.relays[service] = r
}

// WatchDeadLetters adds a count of service's dead letters from source
// ("outbox" or "inbox"), read at scrape time within ScrapeTimeout.
func (e *Events) WatchDeadLetters(service, source string, count func(context.Context) (int, error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dead[[2]string{service, source}] = count
}

// Describe implements prometheus.Collector.
func (e *Events) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{e.published, e.failures, e.givenUp, e.dbErrors, e.lag, e.leader, e.deadLetters} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Events) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	relays, dead := maps.Clone(e.relays), maps.Clone(e.dead)
	e.mu.Unlock()

	for service, r := range relays {
		s := r.Stats()
		ch <- prometheus.MustNewConstMetric(e.published, prometheus.CounterValue, float64(s.Published), service)
		ch <- prometheus.MustNewConstMetric(e.failures, prometheus.CounterValue, float64(s.Failures), service)
		ch <- prometheus.MustNewConstMetric(e.givenUp, prometheus.CounterValue, float64(s.GivenUp), service)
		ch <- prometheus.MustNewConstMetric(e.dbErrors, prometheus.CounterValue, float64(s.DBErrors), service)
		ch <- prometheus.MustNewConstMetric(e.lag, prometheus.GaugeValue, s.Lag.Seconds(), service)
		leader := 0.0
		if s.Leader {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(e.leader, prometheus.GaugeValue, leader, service)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	for k, count := range dead {
		n, err := count(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(e.deadLetters, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(e.deadLetters, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
