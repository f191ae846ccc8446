// Package metrics exposes a coordinator's metrics to Prometheus.
//
// Metrics implements coordinator.Observer: pass it as Config.Observer, then
// call Watch with the coordinator so that scrapes also read gauges from the
// store, and serve Handler (the coordinator's API does, on GET /metrics).
//
//	dtx_transactions_started_total{pattern}                 counter
//	dtx_transactions_finished_total{pattern,status}         counter (status: succeeded, failed)
//	dtx_transactions_inflight{status}                       gauge, from the store at scrape time (running, compensating; all coordinators)
//	dtx_transactions_driven                                 gauge, transactions this coordinator drives now
//	dtx_branch_call_duration_seconds{op,outcome}            histogram (op: action, compensate, try, confirm, cancel; outcome: success, failure, unknown)
//	dtx_branch_retries_total{op}                            counter, calls scheduled again after an unknown outcome or a failure that cannot be given up
//	dtx_alerts_total{op}                                    counter, alerts for compensations (and confirms, steps past the pivot) that keep failing
//	dtx_recovery_claimed_total                              counter, transactions claimed by recovery (expired or released leases)
//	dtx_recovery_backlog                                    gauge, from the store at scrape time: unfinished transactions no coordinator holds a lease on
//	dtx_lease_renew_failures_total                          counter
//
// plus the Go runtime and process collectors. Recording an event costs an
// atomic add (a histogram observation for branch calls): label values are
// resolved once, up front, and nothing is allocated.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
)

var _ coordinator.Observer = (*Metrics)(nil)

// ScrapeTimeout bounds the store queries of one scrape.
const ScrapeTimeout = 5 * time.Second

// Label values resolved up front. An operation name outside ops (a saga
// step may name its operations freely) is counted under its role, action
// or compensate, which keeps the label set bounded.
var (
	patterns = []dtx.Pattern{dtx.PatternSaga, dtx.PatternTCC, dtx.PatternXA}
	finals   = []dtx.Status{dtx.StatusSucceeded, dtx.StatusFailed}
	ops      = []dtx.Op{dtx.OpAction, dtx.OpCompensate, dtx.OpTry, dtx.OpConfirm, dtx.OpCancel}
	classes  = []dtx.Class{dtx.Unknown, dtx.Success, dtx.Failure}
)

// CallBuckets are the branch call latency buckets, in seconds: from
// loopback calls (sub-millisecond) to calls at the default 5s branch
// timeout.
var CallBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics records a coordinator's events. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	started  [3]prometheus.Counter
	finished [3][2]prometheus.Counter
	calls    [5][3]prometheus.Observer
	retries  [5]prometheus.Counter
	alerts   [5]prometheus.Counter
	claimed  prometheus.Counter
	renew    prometheus.Counter
	// Vectors for values outside the resolved ones (a pattern or status
	// added later).
	startedVec, finishedVec *prometheus.CounterVec
}

// New returns metrics registered in a registry of their own, with the Go
// runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return NewWith(reg)
}

// NewWith returns metrics registered in reg.
func NewWith(reg *prometheus.Registry) *Metrics {
	m := &Metrics{reg: reg}
	m.startedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dtx_transactions_started_total", Help: "Global transactions recorded, by pattern.",
	}, []string{"pattern"})
	m.finishedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dtx_transactions_finished_total", Help: "Global transactions finished by this coordinator, by pattern and final status.",
	}, []string{"pattern", "status"})
	callsVec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dtx_branch_call_duration_seconds", Help: "Branch call latency, by operation and outcome class.",
		Buckets: CallBuckets,
	}, []string{"op", "outcome"})
	retriesVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dtx_branch_retries_total", Help: "Branch operations scheduled to be called again (unknown outcome, or a failure of an operation that must succeed), by operation.",
	}, []string{"op"})
	alertsVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dtx_alerts_total", Help: "Alerts raised for operations that must succeed (compensations, cancels, confirms) and keep failing, by operation.",
	}, []string{"op"})
	m.claimed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dtx_recovery_claimed_total", Help: "Unfinished transactions claimed by recovery after their lease expired or was released.",
	})
	m.renew = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dtx_lease_renew_failures_total", Help: "Failed renewals of this coordinator's leases.",
	})
	reg.MustRegister(m.startedVec, m.finishedVec, callsVec, retriesVec, alertsVec, m.claimed, m.renew)
	for i, p := range patterns {
		m.started[i] = m.startedVec.WithLabelValues(string(p))
		for j, s := range finals {
			m.finished[i][j] = m.finishedVec.WithLabelValues(string(p), string(s))
		}
	}
	for i, op := range ops {
		for _, c := range classes {
			m.calls[i][c] = callsVec.WithLabelValues(string(op), c.String())
		}
		m.retries[i] = retriesVec.WithLabelValues(string(op))
		m.alerts[i] = alertsVec.WithLabelValues(string(op))
	}
	return m
}

// Registry returns the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format. A store
// error during a scrape drops the store-derived gauges from that scrape
// and is reported in it, the other metrics are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Watch registers the gauges read from c at scrape time: transactions in
// flight by status and the recovery backlog (both from c's store, shared by
// every coordinator on it), and the transactions c drives. Call it once.
func (m *Metrics) Watch(c *coordinator.Coordinator) {
	m.reg.MustRegister(&storeCollector{c: c,
		inflight: prometheus.NewDesc("dtx_transactions_inflight", "Unfinished transactions in the store, by status.", []string{"status"}, nil),
		backlog:  prometheus.NewDesc("dtx_recovery_backlog", "Unfinished transactions no coordinator holds a lease on (expired or released): recovery will claim them.", nil, nil),
		driven:   prometheus.NewDesc("dtx_transactions_driven", "Transactions this coordinator drives now.", nil, nil),
	})
}

func patternIndex(p dtx.Pattern) int {
	for i, q := range patterns {
		if q == p {
			return i
		}
	}
	return -1
}

// opIndex resolves the label of a call: its wire name if known, else its
// role.
func opIndex(role, wire dtx.Op) int {
	for i, op := range ops {
		if op == wire {
			return i
		}
	}
	if role == dtx.OpCompensate {
		return 1
	}
	return 0
}

// TxStarted implements coordinator.Observer.
func (m *Metrics) TxStarted(p dtx.Pattern) {
	if i := patternIndex(p); i >= 0 {
		m.started[i].Inc()
		return
	}
	m.startedVec.WithLabelValues(string(p)).Inc()
}

// TxFinished implements coordinator.Observer.
func (m *Metrics) TxFinished(p dtx.Pattern, s dtx.Status) {
	i, j := patternIndex(p), -1
	switch s {
	case dtx.StatusSucceeded:
		j = 0
	case dtx.StatusFailed:
		j = 1
	}
	if i >= 0 && j >= 0 {
		m.finished[i][j].Inc()
		return
	}
	m.finishedVec.WithLabelValues(string(p), string(s)).Inc()
}

// BranchCall implements coordinator.Observer.
func (m *Metrics) BranchCall(role, wire dtx.Op, class dtx.Class, took time.Duration) {
	if class < dtx.Unknown || class > dtx.Failure {
		class = dtx.Unknown
	}
	m.calls[opIndex(role, wire)][class].Observe(took.Seconds())
}

// BranchRetry implements coordinator.Observer.
func (m *Metrics) BranchRetry(role, wire dtx.Op) { m.retries[opIndex(role, wire)].Inc() }

// Alert implements coordinator.Observer.
func (m *Metrics) Alert(a coordinator.Alert) {
	role := dtx.OpAction
	if a.Op == string(dtx.OpCompensate) || a.Op == string(dtx.OpCancel) {
		role = dtx.OpCompensate
	}
	m.alerts[opIndex(role, dtx.Op(a.Op))].Inc()
}

// Claimed implements coordinator.Observer.
func (m *Metrics) Claimed(n int) { m.claimed.Add(float64(n)) }

// RenewFailed implements coordinator.Observer.
func (m *Metrics) RenewFailed() { m.renew.Inc() }

// storeCollector reads gauges at scrape time.
type storeCollector struct {
	c                         *coordinator.Coordinator
	inflight, backlog, driven *prometheus.Desc
}

func (s *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.inflight
	ch <- s.backlog
	ch <- s.driven
}

func (s *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(s.driven, prometheus.GaugeValue, float64(s.c.Active()))
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	st := s.c.Store()
	if counts, err := st.Counts(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(s.inflight, err)
	} else {
		for _, status := range []dtx.Status{dtx.StatusRunning, dtx.StatusCompensating} {
			ch <- prometheus.MustNewConstMetric(s.inflight, prometheus.GaugeValue, float64(counts[status]), string(status))
		}
	}
	if n, err := st.Backlog(ctx, time.Now()); err != nil {
		ch <- prometheus.NewInvalidMetric(s.backlog, err)
	} else {
		ch <- prometheus.MustNewConstMetric(s.backlog, prometheus.GaugeValue, float64(n))
	}
}
