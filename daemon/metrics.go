package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/runtimes"
)

// metrics are the daemon's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	tasks     *prometheus.GaugeVec     // fxd_tasks{state}: tasks the daemon holds, by state
	finishes  *prometheus.CounterVec   // fxd_tasks_finished_total{state}
	latency   prometheus.Histogram     // fxd_task_latency_seconds: received to finished
	queueWait prometheus.Histogram     // fxd_task_queue_seconds: received to dispatched
	phases    *prometheus.HistogramVec // fxd_task_phase_seconds{phase,start}
	requests  *prometheus.CounterVec   // fxd_http_requests_total{code}
}

func newMetrics(pools func() runtimes.Stats, commits func() int64) *metrics {
	buckets := prometheus.ExponentialBuckets(0.0001, 2, 22) // 100µs … ~3.5 min
	m := &metrics{
		reg: prometheus.NewRegistry(),
		tasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fxd_tasks", Help: "Tasks by state: queued and running ones the daemon holds now; final ones since start.",
		}, []string{"state"}),
		finishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fxd_tasks_finished_total", Help: "Tasks that reached a final state, by state.",
		}, []string{"state"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fxd_task_latency_seconds", Help: "Time from a task's arrival to its end.", Buckets: buckets,
		}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fxd_task_queue_seconds", Help: "Time from a task's arrival to its leaving the queue, observed when it leaves.", Buckets: buckets,
		}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fxd_task_phase_seconds",
			Help: "Time finished tasks spent in each phase: queue (arrival to dispatch), start (dispatch to its start on a worker: " +
				"a cold start, or the wait for a warm worker) and run (on the worker); start is cold when a worker was started for the task.",
			Buckets: prometheus.ExponentialBucketsRange(0.0001, 3600, 24), // 100µs … 1h, ×2.13
		}, []string{"phase", "start"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fxd_http_requests_total", Help: "API requests answered, by status code.",
		}, []string{"code"}),
	}
	for _, s := range api.States {
		m.tasks.WithLabelValues(string(s))
	}
	for _, p := range []string{"queue", "start", "run"} {
		m.phases.WithLabelValues(p, "cold")
		m.phases.WithLabelValues(p, "warm")
	}
	m.reg.MustRegister(m.tasks, m.finishes, m.latency, m.queueWait, m.phases, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&poolCollector{stats: pools},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fxd_store_commits_total", Help: "Write transactions of the task store, each one fsync.",
		}, func() float64 { return float64(commits()) }))
	return m
}

// transition moves one task between state gauges ("" = from nowhere).
func (m *metrics) transition(from, to api.State) {
	if from != "" {
		m.tasks.WithLabelValues(string(from)).Dec()
	}
	m.tasks.WithLabelValues(string(to)).Inc()
}

// finished counts a task that reached its final state t and observes the
// phases of its life whose ends are known.
func (m *metrics) finished(t api.Task) {
	m.finishes.WithLabelValues(string(t.State)).Inc()
	if !t.ReceivedAt.IsZero() {
		m.latency.Observe(t.FinishedAt.Sub(t.ReceivedAt).Seconds())
	}
	start := "warm"
	if t.Cold {
		start = "cold"
	}
	// A phase whose ends are known is observed even when it is 0.
	observe := func(phase string, from, to time.Time, d time.Duration) {
		if !from.IsZero() && !to.IsZero() {
			m.phases.WithLabelValues(phase, start).Observe(d.Seconds())
		}
	}
	queue, startup, run := t.Timings()
	observe("queue", t.ReceivedAt, t.DispatchedAt, queue)
	observe("start", t.DispatchedAt, t.StartedAt, startup)
	observe("run", t.StartedAt, t.FinishedAt, run)
}

// poolCollector reads the warm pools' figures at scrape time.
type poolCollector struct{ stats func() runtimes.Stats }

var (
	workersDesc    = prometheus.NewDesc("fxd_workers", "Warm workers on this node, by state.", []string{"state"}, nil)
	coldStartsDesc = prometheus.NewDesc("fxd_cold_starts_total", "Workers started for a task that found none warm.", nil, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workersDesc
	ch <- coldStartsDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(s.Busy), "busy")
	ch <- prometheus.MustNewConstMetric(coldStartsDesc, prometheus.CounterValue, float64(s.ColdStarts))
}
