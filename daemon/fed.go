package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/federation"
)

// fed is the daemon's federation ([federation]): the peer endpoint where
// peers forward tasks here, and a link to every peer with a url, through
// which tasks of this site's users go there.
type fed struct {
	d     *Daemon
	cfg   conf.Federation // as the daemon started; trust material reloads
	log   zerolog.Logger
	trust atomic.Pointer[federation.Trust]
	links map[string]*peerLink // peers with a url, by name

	mu    sync.Mutex
	tasks map[string]*fwdTask // forwarded tasks not final yet, by ID here
	// forwarded counts them by account, against its max_queued.
	forwarded map[string]int
	// peerMu serializes the forwards of each peer site here, so that a
	// batch sent again while the first is being stored finds it stored.
	peerMu sync.Map // site → *sync.Mutex
	// stores are the synchronous forwarded runs being stored, after their
	// answer; Daemon.Run waits for them once no request is served.
	stores sync.WaitGroup
}

// peerLink is this site's side of the link with one peer.
type peerLink struct {
	name, url string
	client    *api.Client
	fw        *forwarder
	log       zerolog.Logger

	mu       sync.Mutex
	healthy  bool
	lastErr  string
	since    time.Time // of the current health
	latency  time.Duration
	lastSeen time.Time
	offers   *api.Offers
}

// newFed sets up the federation of cfg; nil when it lists no peer and
// listens nowhere.
func newFed(d *Daemon) (*fed, error) {
	fc := d.cfg.Federation
	if fc.Listen == "" && len(fc.Peer) == 0 {
		return nil, nil
	}
	f := &fed{d: d, cfg: fc, log: d.log.With().Str("component", "federation").Logger(),
		links: map[string]*peerLink{}, tasks: map[string]*fwdTask{}, forwarded: map[string]int{}}
	t, err := federation.LoadTrust(d.cfg.Site.Name, fc)
	if err != nil {
		return nil, err
	}
	f.trust.Store(t)
	for _, p := range fc.Peer {
		if p.URL == "" {
			continue
		}
		c, err := api.NewClient(p.URL, api.ClientOptions{
			TLS:     federation.ClientConfig(f.trust.Load, p.Name, time.Now),
			Timeout: peerTimeout,
			// A query answers at most 16 MiB of outputs, in base64; a
			// forward or a run, as much as a task's record.
			MaxAnswer: max(64<<20, 2*int64(d.cfg.Limits.MaxResultBytes)),
		})
		if err != nil {
			return nil, fmt.Errorf("federation peer %s: %w", p.Name, err)
		}
		l := &peerLink{name: p.Name, url: p.URL, client: c, since: time.Now(), lastErr: "not contacted yet",
			log: f.log.With().Str("peer", p.Name).Logger()}
		l.fw = newForwarder(f, l)
		f.links[p.Name] = l
	}
	if len(f.links) > 0 {
		d.metrics.reg.MustRegister(peerCollector{f})
	}
	return f, nil
}

// peerTimeout bounds one request to a peer, on top of a query's wait.
const peerTimeout = 30 * time.Second

// run serves the peer endpoint (when federation.listen is set) and runs
// every link until ctx ends.
func (f *fed) run(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	for _, l := range f.links {
		wg.Add(2)
		go func() { defer wg.Done(); f.offersLoop(ctx, l) }()
		go func() { defer wg.Done(); l.fw.run(ctx) }()
	}
	var err error
	if ln != nil {
		srv := &http.Server{Handler: f.routes(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: newStdLoggerAt(f.log, zerolog.WarnLevel),
			BaseContext: func(net.Listener) context.Context { return ctx }}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		f.log.Info().Str("listen", ln.Addr().String()).Int("peers", len(f.cfg.Peer)).Msg("peer endpoint serving")
		if e := srv.Serve(ln); !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("serve federation.listen %s: %w", ln.Addr(), e)
		}
	}
	wg.Wait()
	return err
}

// listen opens the peer endpoint's socket: TLS 1.3, mutual, peers only.
func (f *fed) listen() (net.Listener, error) {
	if f == nil || f.cfg.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", f.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on federation.listen %s: %w", f.cfg.Listen, err)
	}
	return tls.NewListener(ln, federation.ServerConfig(f.trust.Load, time.Now)), nil
}

// reload takes up new trust material ([federation] cert, key, ca, and the
// peers' ca, fingerprint and allow) for the next handshakes.
func (f *fed) reload(site string, fc conf.Federation) error {
	t, err := federation.LoadTrust(site, fc)
	if err != nil {
		return err
	}
	f.trust.Store(t)
	// Kept-alive connections were verified under the old trust: the next
	// requests dial again, under the new one.
	for _, l := range f.links {
		l.client.CloseIdleConnections()
	}
	return nil
}

// offersLoop asks the peer what it offers every offer_interval, which
// also measures its health and latency.
func (f *fed) offersLoop(ctx context.Context, l *peerLink) {
	for {
		f.refreshOffers(ctx, l)
		// Jitter keeps the links of a big federation from asking in step.
		every := f.cfg.OfferInterval.D()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every - every/10 + rand.N(every/5+1)):
		}
	}
}

// refreshOffers asks l's peer for its offers once.
func (f *fed) refreshOffers(ctx context.Context, l *peerLink) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	if err := l.stillPeer(); err != nil {
		l.contact(err)
		return
	}
	start := time.Now()
	o, err := l.client.Offers(ctx)
	if ctx.Err() != nil && err != nil && errors.Is(context.Cause(ctx), context.Canceled) {
		return // shutting down
	}
	var re *api.RemoteError
	if errors.As(err, &re) && re.Code == api.CodeDenied {
		// Linked, but it lets this site forward without discovering.
		// (A certificate refused by either side is an error of the
		// link, not an answer: it is no *api.RemoteError.)
		l.contact(nil)
		l.mu.Lock()
		l.latency, l.offers = time.Since(start), nil
		l.mu.Unlock()
		return
	}
	l.contact(err)
	if err != nil {
		return
	}
	if o.Site != l.name {
		l.log.Warn().Str("says", o.Site).Msg("peer's offers name another site; its certificate is what counts")
	}
	o.Site = l.name
	l.mu.Lock()
	l.latency, l.offers = time.Since(start), &o
	l.mu.Unlock()
}

// contact records the outcome of a request to the peer: healthy when err
// is nil; a change of health is logged once.
func (l *peerLink) contact(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	was := l.healthy
	l.healthy = err == nil
	if err == nil {
		l.lastErr, l.lastSeen = "", now
	} else {
		l.lastErr = err.Error()
	}
	if was != l.healthy || (err != nil && l.since.IsZero()) {
		l.since = now
		ev := l.log.Info()
		if err != nil {
			ev = l.log.Warn().Err(err)
		}
		ev.Bool("healthy", l.healthy).Msg("peer health changed")
	}
}

// stillPeer says why the link may no longer be used: its peer was dropped
// from [[federation.peer]] by a reload.
func (l *peerLink) stillPeer() error {
	if _, ok := l.fw.f.trust.Load().Peer(l.name); !ok {
		return fmt.Errorf("site %s is no longer a peer of this site ([[federation.peer]] reloaded without it): %w", l.name, api.ErrUnavailable)
	}
	return nil
}

// status describes the link for GET /v1/sites.
func (l *peerLink) status() api.PeerStatus {
	l.mu.Lock()
	s := api.PeerStatus{Name: l.name, URL: l.url, Healthy: l.healthy, Error: l.lastErr,
		Latency: api.Duration(l.latency), LastSeen: l.lastSeen, Offers: l.offers}
	l.mu.Unlock()
	s.Forwarded = l.fw.pending()
	return s
}

// sites lists the peers for GET /v1/sites: those this site dials with
// their health, then those that only dial here.
func (f *fed) sites() api.SitesResponse {
	out := api.SitesResponse{Site: f.d.cfg.Site.Name, Peers: []api.PeerStatus{}}
	for _, p := range f.cfg.Peer {
		if l, ok := f.links[p.Name]; ok {
			out.Peers = append(out.Peers, l.status())
			continue
		}
		out.Peers = append(out.Peers, api.PeerStatus{Name: p.Name, Error: "no url: this site does not dial it; it may forward here"})
	}
	return out
}

// candidates are the links as routing sees them.
func (f *fed) candidates() []federation.Candidate {
	var out []federation.Candidate
	for _, l := range f.links {
		l.mu.Lock()
		out = append(out, federation.Candidate{Name: l.name, Healthy: l.healthy, Offers: l.offers})
		l.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b federation.Candidate) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// route resolves the site a task names: a peer this site dials, or any
// (federation.Route) for a function given as "owner/name".
func (f *fed) route(spec api.TaskSpec) (string, error) {
	if f == nil {
		return "", fmt.Errorf("site %q: this site is in no federation ([federation] lists no peer): %w", spec.Site, api.ErrInvalid)
	}
	if spec.Site != api.SiteAny {
		if _, ok := f.links[spec.Site]; !ok {
			return "", fmt.Errorf("site %q is not a peer this site can reach (a [[federation.peer]] with a url); fx sites lists them: %w", spec.Site, api.ErrNotFound)
		}
		return spec.Site, nil
	}
	if !strings.Contains(spec.Function, "/") {
		return "", fmt.Errorf("site any: name the function as owner/name, as the peers offer it (fx sites): %w", api.ErrInvalid)
	}
	var digests []string
	for _, r := range spec.Data {
		if api.IsDigest(r.Ref) {
			digests = append(digests, r.Ref)
		}
	}
	return federation.Route(f.candidates(), spec.Function, digests)
}

// capacity is this site's load, for its offers.
func (d *Daemon) capacity() api.Capacity {
	var c api.Capacity
	for _, h := range d.nodes.linked() {
		c.Slots += h.Slots
	}
	if d.cfg.Batch.DaemonNodeTasks {
		c.Slots += runtime.NumCPU()
	}
	c.Running, c.Queued = d.disp.load()
	return c
}

// backoff is the pause before retry n (from 1) of a request to a peer:
// doubling from a tenth of a second to half a minute, with jitter.
func backoff(n int) time.Duration {
	d := min(100*time.Millisecond<<min(n-1, 10), 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// handleSites lists the federation's peers with their health.
func (d *Daemon) handleSites(w http.ResponseWriter, r *http.Request, c caller) error {
	if d.fed == nil {
		return writeJSON(w, http.StatusOK, api.SitesResponse{Site: d.cfg.Site.Name, Peers: []api.PeerStatus{}})
	}
	return writeJSON(w, http.StatusOK, d.fed.sites())
}

// peerCollector exports the links' health for Prometheus.
type peerCollector struct{ f *fed }

var (
	peerUpDesc      = prometheus.NewDesc("fxd_peer_up", "Whether the last request to a federation peer succeeded (1) or not (0).", []string{"peer"}, nil)
	peerLatencyDesc = prometheus.NewDesc("fxd_peer_latency_seconds", "Round trip of the last offers request to a federation peer.", []string{"peer"}, nil)
	peerPendingDesc = prometheus.NewDesc("fxd_peer_forwarded", "Tasks forwarded to a federation peer and not final yet.", []string{"peer"}, nil)
)

func (c peerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- peerUpDesc
	ch <- peerLatencyDesc
	ch <- peerPendingDesc
}

func (c peerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.f.links {
		s := l.status()
		up := 0.0
		if s.Healthy {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(peerUpDesc, prometheus.GaugeValue, up, l.name)
		ch <- prometheus.MustNewConstMetric(peerLatencyDesc, prometheus.GaugeValue, s.Latency.D().Seconds(), l.name)
		ch <- prometheus.MustNewConstMetric(peerPendingDesc, prometheus.GaugeValue, float64(s.Forwarded), l.name)
	}
}
