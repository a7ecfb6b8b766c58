package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/runtimes"
)

// metrics are the daemon's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	tasks    *prometheus.GaugeVec   // fxd_tasks{state}: tasks the daemon holds, by state
	finishes *prometheus.CounterVec // fxd_tasks_finished_total{state}
	latency  prometheus.Histogram   // fxd_task_latency_seconds: received to finished
	// phases are the series of fxd_task_phase_seconds{phase,start}, by
	// phase (queue, start, run) then start (warm, cold).
	phases   [3][2]prometheus.Observer
	requests *prometheus.CounterVec // fxd_http_requests_total{code}
	// placements counts tasks that read data by where they ran:
	// fxd_data_placements_total{locality} (hit: on a node that held their
	// data; miss: on one that fetched it).
	placements *prometheus.CounterVec
	// nodeFetches counts cache entries sent to nodes, and their bytes.
	nodeFetches, nodeFetchBytes prometheus.Counter
	// forwarded counts tasks forwarded to peers that reached a final
	// state: fxd_forwarded_tasks_total{peer,state}.
	forwarded *prometheus.CounterVec
}

// phaseNames and startNames label fxd_task_phase_seconds, in the order of
// metrics.phases.
var (
	phaseNames = [3]string{"queue", "start", "run"}
	startNames = [2]string{"warm", "cold"}
)

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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fxd_http_requests_total", Help: "API requests answered, by status code.",
		}, []string{"code"}),
		placements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fxd_data_placements_total",
			Help: "Tasks that read data, by locality: hit when they ran where their data was cached (a node that held it, or the daemon's), miss when their node had to fetch it.",
		}, []string{"locality"}),
		nodeFetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fxd_data_node_fetches_total", Help: "Cache entries sent to nodes that lacked them.",
		}),
		nodeFetchBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fxd_data_node_fetch_bytes_total", Help: "Bytes of the cache entries sent to nodes.",
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fxd_forwarded_tasks_total", Help: "Tasks of this site's users forwarded to a peer site that reached a final state, by peer and state.",
		}, []string{"peer", "state"}),
	}
	m.placements.WithLabelValues("hit")
	m.placements.WithLabelValues("miss")
	for _, s := range api.States {
		m.tasks.WithLabelValues(string(s))
	}
	phases := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fxd_task_phase_seconds",
		Help: "Time finished tasks spent in each phase: queue (arrival to dispatch), start (dispatch to its start on a worker: " +
			"a cold start, or the wait for a warm worker) and run (on the worker); start is cold when a worker was started for the task.",
		Buckets: prometheus.ExponentialBucketsRange(0.0001, 3600, 24), // 100µs … 1h, ×2.13
	}, []string{"phase", "start"})
	for p, phase := range phaseNames {
		for s, start := range startNames {
			m.phases[p][s] = phases.WithLabelValues(phase, start)
		}
	}
	m.reg.MustRegister(m.tasks, m.finishes, m.latency, phases, m.requests, m.placements, m.nodeFetches, m.nodeFetchBytes, m.forwarded,
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
// phases of its life that it knows, even those that took no time.
func (m *metrics) finished(t api.Task) {
	m.finishes.WithLabelValues(string(t.State)).Inc()
	if !t.ReceivedAt.IsZero() {
		m.latency.Observe(t.FinishedAt.Sub(t.ReceivedAt).Seconds())
	}
	start := 0 // warm
	if t.Cold {
		start = 1
	}
	queue, startup, run := t.Timings()
	for p, ph := range [3]api.Phase{queue, startup, run} {
		if ph.Known {
			m.phases[p][start].Observe(ph.D.Seconds())
		}
	}
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

// finishedForwarded counts forwarded tasks that reached a final state.
func (m *metrics) finishedForwarded(tasks []api.Task) {
	for _, t := range tasks {
		m.forwarded.WithLabelValues(t.Site, string(t.State)).Inc()
	}
}
