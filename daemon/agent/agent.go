package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/runtimes"
	"fxd.dev/fxd/runtimes/images"
)

// Link timing; the daemon uses the same.
const (
	heartbeat   = 5 * time.Second
	linkTimeout = 3 * heartbeat
	maxBackoff  = 30 * time.Second
)

// Config configures an agent.
type Config struct {
	// Daemon is the daemon's HTTPS endpoint, "https://login1:8443".
	Daemon string
	// TLS verifies the daemon (RootCAs); nil uses the system's roots.
	TLS *tls.Config
	// Token is the block's credential.
	Token string
	// Hello says who the agent is: Node, Block, Slots, Runtimes, ...
	Hello api.NodeHello
	// Pools runs the tasks.
	Pools *runtimes.Pools
	// Images keeps the images of the node's containers, fetched from the
	// daemon as tasks need them; nil when the node runs none.
	Images *images.Store
	// ImageLimits bounds what an image fetched from the daemon may take.
	ImageLimits images.Limits
	// Cache keeps the data entries tasks read, fetched from the daemon as
	// they need them; MaxEntry bounds one.
	Cache    *cache.Store
	MaxEntry int64
	// Lookup resolves an account by name on this node.
	Lookup func(name string) (isolation.Account, error)
}

// ErrRefused is returned by Run when the daemon no longer takes the
// agent's credential: its block is over, or it was revoked.
var ErrRefused = errors.New("the daemon refuses this node's credential")

// agent is the state that outlives one link: tasks under way and results
// not yet sent.
type agent struct {
	c      Config
	log    zerolog.Logger
	client *http.Client

	mu       sync.Mutex
	running  map[string]context.CancelFunc
	results  []api.NodeResult
	draining bool
	wake     chan struct{}
	wg       sync.WaitGroup

	fetches      singleflight.Group               // fetches of images and data under way, by digest
	inBackground map[*context.CancelFunc]struct{} // background work the daemon asked for (stages, uploads), under way; guarded by mu
	heldSent     string                           // the cache's digests the daemon last heard, joined; guarded by mu
	unsent       []api.NodeStage                  // entries asked back that could not be sent; guarded by mu
}

// Run links to the daemon and runs what it sends until ctx is done, the
// daemon drains the node (then it returns nil once its tasks have ended
// and their results are sent), or the daemon refuses the credential
// (ErrRefused). A link that fails is dialled again, with backoff.
func Run(ctx context.Context, c Config, log zerolog.Logger) error {
	if c.Hello.Slots < 1 {
		c.Hello.Slots = 1
	}
	a := &agent{c: c, log: log.With().Str("component", "agent").Str("node", c.Hello.Node).Str("block", c.Hello.Block).Logger(),
		client:  &http.Client{Transport: &http.Transport{TLSClientConfig: c.TLS, ForceAttemptHTTP2: false, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
		running: map[string]context.CancelFunc{}, inBackground: map[*context.CancelFunc]struct{}{}, wake: make(chan struct{}, 1)}
	defer a.stopTasks()
	backoff := time.Second
	for {
		linked, err := a.link(ctx)
		if a.drained() {
			a.log.Info().Msg("drained by the daemon; leaving")
			return nil
		}
		if errors.Is(err, ErrRefused) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if linked {
			backoff = time.Second
		}
		a.log.Warn().Err(err).Dur("retry_in", backoff).Msg("link to the daemon lost; dialling again")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// drained says the daemon drained the node and nothing is left to do.
func (a *agent) drained() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.draining && len(a.running) == 0 && len(a.results) == 0
}

// stopTasks cancels every task and stage, and waits for them.
func (a *agent) stopTasks() {
	a.mu.Lock()
	for _, cancel := range a.running {
		cancel()
	}
	for cancel := range a.inBackground {
		(*cancel)()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// link runs one link until it fails; linked says it got as far as the
// daemon's answer.
func (a *agent) link(ctx context.Context) (linked bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.c.Daemon, "/")+api.LinkPath, pr)
	if err != nil {
		return false, fmt.Errorf("link to %s: %w", a.c.Daemon, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.c.Token)
	req.Header.Set("Content-Type", "application/x-fxd-link")
	wdone := make(chan error, 1)
	go func() { wdone <- a.write(ctx, pw) }()
	resp, err := a.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("link to %s: %w", a.c.Daemon, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		err := fmt.Errorf("link to %s: %s: %s", a.c.Daemon, resp.Status, strings.TrimSpace(string(body)))
		if resp.StatusCode == http.StatusUnauthorized {
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return false, err
	}
	a.log.Info().Str("daemon", a.c.Daemon).Msg("linked")
	rerr := make(chan error, 1)
	go func() { rerr <- a.read(ctx, resp.Body) }()
	select {
	case err = <-rerr:
	case err = <-wdone:
	}
	return true, err
}

// read handles the daemon's frames until the link ends. A link silent
// for linkTimeout is dead.
func (a *agent) read(ctx context.Context, body io.ReadCloser) error {
	alive := time.AfterFunc(linkTimeout, func() { body.Close() })
	defer alive.Stop()
	rd := bufio.NewReaderSize(body, 64<<10)
	for {
		f, err := api.ReadFrame(rd)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the daemon closed the link")
			}
			return fmt.Errorf("read from the daemon: %w", err)
		}
		alive.Reset(linkTimeout)
		for _, t := range f.Run {
			a.start(ctx, t)
		}
		for _, st := range f.Stage {
			a.prestage(ctx, st)
		}
		for _, st := range f.Forget {
			a.forget(st)
		}
		for _, st := range f.Upload {
			a.upload(ctx, st)
		}
		a.mu.Lock()
		for _, id := range f.Cancel {
			if cancel := a.running[id]; cancel != nil {
				cancel()
			}
		}
		if f.Drain {
			a.draining = true
		}
		a.mu.Unlock()
		if f.Drain {
			a.signal()
		}
	}
}

// write sends the hello, then results as they come, batched, and a
// heartbeat (with the tasks under way) when there is nothing else.
func (a *agent) write(ctx context.Context, w *io.PipeWriter) error {
	a.mu.Lock()
	hello := a.c.Hello
	running := a.runningIDs()
	a.mu.Unlock()
	hello.Data = a.cached()
	a.mu.Lock()
	a.heldSent = strings.Join(hello.Data, ",")
	a.mu.Unlock()
	if err := api.WriteFrame(w, &api.LinkFrame{Hello: &hello, Running: running}); err != nil {
		return err
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		a.mu.Lock()
		f := &api.LinkFrame{Results: a.batchResults(), Unsent: a.unsent}
		a.mu.Unlock()
		if len(f.Results) > 0 || len(f.Unsent) > 0 {
			if err := api.WriteFrame(w, f); err != nil {
				return err
			}
			a.mu.Lock()
			a.results = a.results[len(f.Results):] // results that came meanwhile stay
			a.unsent = a.unsent[len(f.Unsent):]
			a.mu.Unlock()
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.wake:
		case <-tick.C:
			held := a.held()
			a.mu.Lock()
			hb := &api.LinkFrame{Heartbeat: true, Running: a.runningIDs(), Held: held}
			a.mu.Unlock()
			if err := api.WriteFrame(w, hb); err != nil {
				return err
			}
		}
		if a.drained() {
			return nil
		}
	}
}

// frameBudget is the output bytes one frame of results carries, unless a
// single result is larger; a result whose output could not fit any frame
// (api.MaxLinkFrame, base64 in JSON) is sent as a failure instead.
const (
	frameBudget     = 32 << 20
	maxResultOutput = api.MaxLinkFrame/4*3 - 1<<20
)

// batchResults returns the results to send next: the oldest, and those
// after it while their outputs fit frameBudget. The caller holds a.mu.
func (a *agent) batchResults() []api.NodeResult {
	n, size := 0, 0
	for n < len(a.results) && (n == 0 || size+len(a.results[n].Output) <= frameBudget) {
		if r := &a.results[n]; len(r.Output) > maxResultOutput {
			r.Error = fmt.Sprintf("on node %s: output of %d bytes is more than a node returns in one message (%d); write large results to shared storage",
				a.c.Hello.Node, len(r.Output), maxResultOutput)
			r.State, r.ExitCode, r.Output = api.StateFailed, -1, nil
		}
		size += len(a.results[n].Output)
		n++
	}
	return a.results[:n:n]
}

// runningIDs lists the tasks under way. The caller holds a.mu.
func (a *agent) runningIDs() []string {
	ids := make([]string, 0, len(a.running))
	for id := range a.running {
		ids = append(ids, id)
	}
	return ids
}

// signal wakes the writer.
func (a *agent) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}
