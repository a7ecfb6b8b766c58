package main

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/daemon/store"
	"fxd.dev/fxd/federation"
	"fxd.dev/fxd/internal/testenv"
)

// fedPKI makes, with the fxd federation tooling, what the named sites
// need: site names[0] makes the federation CA, every other site a key
// and a request the CA signs. Site s's files are dir/s/s.pem and
// dir/s/s.key; the CA is dir/<names[0]>/federation-ca.pem.
func fedPKI(t *testing.T, names ...string) (dir, caPath string) {
	t.Helper()
	dir = t.TempDir()
	ca := filepath.Join(dir, names[0])
	if out, stderr, code := fxdRun(t, "federation", "init", "--site", names[0], "--dir", ca, "--host", "127.0.0.1", "--ca"); code != 0 {
		t.Fatalf("federation init %s --ca: exit %d: %s %s", names[0], code, out, stderr)
	}
	caPath = filepath.Join(ca, "federation-ca.pem")
	for _, s := range names[1:] {
		sdir := filepath.Join(dir, s)
		if out, stderr, code := fxdRun(t, "federation", "init", "--site", s, "--dir", sdir, "--host", "127.0.0.1"); code != 0 {
			t.Fatalf("federation init %s: exit %d: %s %s", s, code, out, stderr)
		}
		cert, stderr, code := fxdRun(t, "federation", "sign", "--ca-cert", caPath, "--ca-key", filepath.Join(ca, "federation-ca.key"), filepath.Join(sdir, s+".csr"))
		if code != 0 {
			t.Fatalf("federation sign %s: exit %d: %s", s, code, stderr)
		}
		if err := os.WriteFile(filepath.Join(sdir, s+".pem"), []byte(cert), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, caPath
}

// federation is a set of sites on loopback that trust one CA.
type fedSites struct {
	t     *testing.T
	pki   string
	ca    string
	ports map[string]int
	// addrs and netns are each site's address (127.0.0.1 if not set) and
	// network namespace (the host's if not set).
	addrs, netns map[string]string
}

// addr is the address of site name's peer endpoint.
func (f *fedSites) addr(name string) string {
	a := f.addrs[name]
	if a == "" {
		a = "127.0.0.1"
	}
	return net.JoinHostPort(a, fmt.Sprint(f.ports[name]))
}

func newFederation(t *testing.T, names ...string) *fedSites {
	pki, ca := fedPKI(t, names...)
	f := &fedSites{t: t, pki: pki, ca: ca, ports: map[string]int{}, addrs: map[string]string{}, netns: map[string]string{}}
	for _, n := range names {
		f.ports[n] = freePort(t)
	}
	return f
}

// section is the [federation] of site name, linked with peers; extra
// goes into the [federation] table.
func (f *fedSites) section(name string, peers []string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n[federation]\nlisten = %q\ncert = %q\nkey = %q\nca = %q\npoll_wait = \"2s\"\noffer_interval = \"1s\"\n%s\n",
		f.addr(name), filepath.Join(f.pki, name, name+".pem"), filepath.Join(f.pki, name, name+".key"), f.ca, extra)
	for _, p := range peers {
		fmt.Fprintf(&b, "[[federation.peer]]\nname = %q\nurl = \"https://%s\"\n", p, f.addr(p))
	}
	return b.String()
}

// site starts site name with rules ([[auth.map]] and more) and its
// [federation] section.
func (f *fedSites) site(name, rules, federation string) *site {
	t := f.t
	t.Helper()
	s := newNamedSite(t, name, "", rules+federation)
	s.netns = f.netns[name]
	s.start()
	return s
}

// fedPair is sites a and b, started, where b maps the identity of a's
// first tenant, alice@a, to its own tenant bob.
type fedPair struct {
	f          *fedSites
	a, b       *site
	aTenants   []tenant // alice first
	alice, bob tenant
}

// newPair starts b with bExtra in its config, then a with aTenants
// tenants and aFederation in its [federation] table.
func newPair(t *testing.T, aTenants int, aFederation, bExtra string) fedPair {
	t.Helper()
	tenants, aRules := newTenants(t, aTenants)
	bTenants, bRules := newTenants(t, 1)
	p := fedPair{f: newFederation(t, "a", "b"), aTenants: tenants, alice: tenants[0], bob: bTenants[0]}
	bRules += fmt.Sprintf("\n[[auth.map]]\nmatch = %q\naccount = %q\n", p.alice.user.Name+"@a", p.bob.user.Name)
	p.b = p.f.site("b", bRules+bExtra, p.f.section("b", []string{"a"}, ""))
	p.a = p.f.site("a", aRules, p.f.section("a", []string{"b"}, aFederation))
	return p
}

// waitTasks waits up to within for every task to be final at c.
func waitTasks(t *testing.T, c *api.Client, ids []string, within time.Duration) []api.Task {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ts, err := c.Tasks(ctxT(t, time.Minute), api.TasksRequest{IDs: ids, Wait: api.Duration(5 * time.Second), Output: true})
		if err != nil {
			t.Fatalf("query tasks: %v", err)
		}
		final := 0
		for _, tk := range ts {
			if tk.State.Final() {
				final++
			}
		}
		if final == len(ts) {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks final after %v", final, len(ts), within)
		}
	}
}

// waitOffers waits until site s sees peer offering function ref.
func waitOffers(t *testing.T, c *api.Client, peer, ref string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sites, err := c.Sites(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range sites.Peers {
			if p.Name == peer && p.Healthy && p.Offers != nil {
				for _, f := range p.Offers.Functions {
					if f.Ref == ref {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("site does not see %s offer %s after 30s: %+v", peer, ref, sites)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A user of site a runs a function at site b through a's endpoint: b runs
// it as the account its own rules give "user@a", refuses an identity its
// rules do not map, takes batches, runs the synchronous path, and routes
// "any" to the peer that offers the function.
func TestFederationForward(t *testing.T) {
	// b maps alice@a to bob; mallory@a is mapped to nobody.
	// b keeps outputs over 1 KiB in its data cache.
	p := newPair(t, 2, "", "\n[limits]\nmax_result_bytes = \"1KiB\"\n")
	a, b, alice, mallory, bob := p.a, p.b, p.alice, p.aTenants[1], p.bob

	bc := b.client(bob.id)
	whoami := api.FunctionSpec{Name: "whoami", Command: []string{"/bin/sh", "-c", "id -un; cat"}}
	register(t, bc, whoami)
	shared := whoami
	shared.Name, shared.Federated = "shared", true
	register(t, bc, shared)

	ac := a.client(alice.id)
	ids, err := ac.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "whoami", Site: "b", Input: []byte(`"hi"`)}})
	if err != nil {
		t.Fatal(err)
	}
	task := waitTasks(t, ac, ids, time.Minute)[0]
	if task.State != api.StateSucceeded || string(task.Output) != bob.user.Name+"\n\"hi\"" {
		t.Fatalf("forwarded task = %s %q (error %q), want succeeded as %s", task.State, task.Output, task.Error, bob.user.Name)
	}
	if task.Site != "b" || task.RemoteID == "" || task.Owner != alice.user.Name || task.Function != bob.user.Name+"/whoami" {
		t.Errorf("forwarded task = site %q remote %q owner %q function %q; want site b, a remote id, owner %s, function %s/whoami",
			task.Site, task.RemoteID, task.Owner, task.Function, alice.user.Name, bob.user.Name)
	}
	// At b the task is bob's and says where it came from.
	bt, err := bc.Task(ctxT(t, 10*time.Second), task.RemoteID, 0)
	if err != nil || bt.Origin != "a/"+task.ID || bt.Owner != bob.user.Name {
		t.Errorf("at b: task %+v, %v; want origin a/%s, owner %s", bt, err, task.ID, bob.user.Name)
	}

	// b refuses mallory@a: a fails the task with b's reason.
	mc := a.client(mallory.id)
	ids, err = mc.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "whoami", Site: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	task = waitTasks(t, mc, ids, time.Minute)[0]
	if task.State != api.StateFailed || !strings.Contains(task.Error, "site b refused the task") || !strings.Contains(task.Error, mallory.user.Name+"@a") || !strings.Contains(task.Error, "not mapped") {
		t.Errorf("unmapped identity: %s %q; want failed: b refused, not mapped", task.State, task.Error)
	}

	// A batch goes as batches and every task comes back once.
	const n = 100
	specs := make([]api.TaskSpec, n)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "whoami", Site: "b", Input: []byte(fmt.Sprint(i))}
	}
	ids, err = ac.Submit(ctxT(t, 10*time.Second), specs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range waitTasks(t, ac, ids, 2*time.Minute) {
		if want := fmt.Sprintf("%s\n%d", bob.user.Name, i); tk.State != api.StateSucceeded || string(tk.Output) != want {
			t.Errorf("batch task %d: %s %q %q, want %q", i, tk.State, tk.Output, tk.Error, want)
		}
	}

	// An output too large for b's records comes back through a's cache.
	big := strings.Repeat("0123456789abcdef", 1024) // 16 KiB
	task, err = ac.Run(ctxT(t, time.Minute), "whoami", api.TaskSpec{Site: "b", InputBase64: []byte(big)})
	if err != nil || task.State != api.StateSucceeded || task.OutputRef == "" || task.OutputSize != int64(len(bob.user.Name)+1+len(big)) {
		t.Fatalf("large output at b: %+v, %v; want succeeded with an output ref of %d bytes", task, err, len(bob.user.Name)+1+len(big))
	}
	out, err := ac.Output(ctxT(t, 30*time.Second), task.ID)
	if err != nil || string(out) != bob.user.Name+"\n"+big {
		t.Errorf("a's copy of the large output: %d bytes, %v", len(out), err)
	}

	// The synchronous path through a peer.
	task, err = ac.Run(ctxT(t, time.Minute), "whoami", api.TaskSpec{Site: "b", InputBase64: []byte("sync")})
	if err != nil || task.State != api.StateSucceeded || string(task.Output) != bob.user.Name+"\nsync" {
		t.Errorf("sync run at b: %+v, %v", task, err)
	}

	// site any: a routes by what b offers; bob's unshared whoami is not
	// offered, so it cannot be routed.
	waitOffers(t, ac, "b", bob.user.Name+"/shared")
	task, err = ac.Run(ctxT(t, time.Minute), bob.user.Name+"/shared", api.TaskSpec{Site: api.SiteAny, InputBase64: []byte("any")})
	if err != nil || task.State != api.StateSucceeded || task.Site != "b" {
		t.Errorf("site any: %+v, %v; want succeeded at b", task, err)
	}
	if _, err := ac.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: bob.user.Name + "/whoami", Site: api.SiteAny}}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("site any for an unoffered function: %v, want not found", err)
	}
	// A function that only b offers goes to b with no site named.
	task, err = ac.Run(ctxT(t, time.Minute), bob.user.Name+"/shared", api.TaskSpec{InputBase64: []byte("implicit")})
	if err != nil || task.State != api.StateSucceeded || task.Site != "b" {
		t.Errorf("a function only b offers, no site: %+v, %v; want succeeded at b", task, err)
	}
	ids, err = ac.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: bob.user.Name + "/shared"}})
	if err != nil {
		t.Fatalf("submit a function only b offers, no site: %v", err)
	}
	if task := waitTasks(t, ac, ids, time.Minute)[0]; task.State != api.StateSucceeded || task.Site != "b" {
		t.Errorf("submitted, no site: %+v; want succeeded at b", task)
	}
	// mallory@a may not run bob's federated function either: b maps her
	// to no account.
	task, err = mc.Run(ctxT(t, time.Minute), bob.user.Name+"/shared", api.TaskSpec{Site: "b"})
	if err != nil || task.State != api.StateFailed || !strings.Contains(task.Error, "not mapped") {
		t.Errorf("mallory runs a federated function: %+v, %v; want failed, not mapped", task, err)
	}

	sites, err := ac.Sites(ctxT(t, 10*time.Second))
	if err != nil || len(sites.Peers) != 1 || !sites.Peers[0].Healthy || sites.Peers[0].Latency <= 0 {
		t.Errorf("sites = %+v, %v; want b, healthy, with a latency", sites, err)
	}
	resp, err := a.rawHTTP().Get("http://fxd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`fxd_peer_up{peer="b"} 1`, `fxd_peer_forwarded{peer="b"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("a's metrics lack %s", want)
		}
	}
	// The first task, the batch of 100, the large output, sync, any, and
	// the two with no site named.
	const succeeded = `fxd_forwarded_tasks_total{peer="b",state="succeeded"} `
	if i := strings.Index(string(metrics), succeeded); i < 0 {
		t.Errorf("a's metrics lack %s", succeeded)
	} else if n, _ := strconv.Atoi(strings.Fields(string(metrics[i+len(succeeded):]))[0]); n != 106 {
		t.Errorf("%s%d, want 106", succeeded, n)
	}
}

// The peer endpoint refuses at the TLS layer a client certificate from a
// foreign CA, an expired one, and one naming a site that is no peer.
func TestFederationRefusesStrangers(t *testing.T) {
	f := newFederation(t, "a", "b")
	b := f.site("b", "", f.section("b", []string{"a"}, ""))
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(f.pki, "a", "federation-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := federation.ParseKey(caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert := func(site string, caPEM []byte, caKey *ecdsa.PrivateKey, notBefore time.Time, validity time.Duration) tls.Certificate {
		key, err := federation.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := federation.NewCSR(site, []string{"127.0.0.1"}, key)
		if err != nil {
			t.Fatal(err)
		}
		pemCert, err := federation.Sign(caPEM, caKey, csr, notBefore, validity)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, _ := federation.KeyPEM(key)
		c, err := tls.X509KeyPair(pemCert, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	foreignCA, foreignKey, err := federation.NewCA("elsewhere", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bCert, err := os.ReadFile(filepath.Join(f.pki, "b", "b.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bLeaf, err := federation.ParseCert(bCert)
	if err != nil {
		t.Fatal(err)
	}
	pin := federation.Peer{Name: "b", Fingerprint: federation.Fingerprint(bLeaf)}
	cases := []struct {
		name string
		cert tls.Certificate
		log  string // why b's log says it refused
	}{
		{"foreign CA", cert("a", foreignCA, foreignKey, now, 24*time.Hour), "certificate signed by unknown authority"},
		{"expired", cert("a", caPEM, caKey, now.Add(-48*time.Hour), 24*time.Hour), "not now; the peer must renew it"},
		{"not a peer", cert("c", caPEM, caKey, now, 24*time.Hour), "site c is not a peer of this site"},
	}
	addr := f.addr("b")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, federation.ClientTLS(tc.cert, pin, time.Now))
			if err == nil {
				// TLS 1.3 reports a refused client certificate at the
				// first read.
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			t.Logf("refused: %v", err)
			if err == nil || !strings.Contains(err.Error(), "remote error: tls") {
				t.Errorf("handshake with a %s certificate: %v; want a TLS alert", tc.name, err)
			}
			// At warn, so that the default log level shows it to the admin.
			logged := func() bool {
				for _, line := range strings.Split(b.logs(), "\n") {
					if strings.Contains(line, tc.log) && strings.Contains(line, `"level":"warn"`) {
						return true
					}
				}
				return false
			}
			deadline := time.Now().Add(5 * time.Second)
			for !logged() {
				if time.Now().After(deadline) {
					t.Errorf("b's log does not say %q at warn:\n%s", tc.log, b.logs())
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	// The right certificate passes the same way.
	good := cert("a", caPEM, caKey, now, 24*time.Hour)
	c, err := api.NewClient("https://"+addr, api.ClientOptions{TLS: federation.ClientTLS(good, pin, time.Now), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := c.Offers(ctxT(t, 10*time.Second)); err != nil || o.Site != "b" {
		t.Errorf("offers with a good certificate: %+v, %v", o, err)
	}
}

// countOrigins opens a stopped site's task store and counts, by origin,
// the tasks forwarded to it, and the final ones.
func countOrigins(t *testing.T, s *site) (byOrigin map[string]int, final int) {
	t.Helper()
	st, err := store.Open(filepath.Join(s.state, "tasks.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	byOrigin = map[string]int{}
	// Unfinished walks the active ones; final ones are counted by state.
	counts, err := st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range api.States {
		if state.Final() {
			final += counts[state]
		}
	}
	if err := st.Each(func(tk api.Task) error {
		if tk.Origin != "" {
			byOrigin[tk.Origin]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return byOrigin, final
}

// A peer killed (SIGKILL) mid-batch and restarted loses nothing and
// keeps no duplicate: a resends what b had not acknowledged, b finds what
// it had stored by its origin, and every task ends once at both sites.
func TestFederationPeerCrash(t *testing.T) {
	p := newPair(t, 1, `retry_deadline = "5m"`, "")
	a, b, alice, bob := p.a, p.b, p.alice, p.bob
	register(t, b.client(bob.id), api.FunctionSpec{Name: "slow", Command: []string{"/bin/sh", "-c", "sleep 0.02; cat"}})

	ac := a.client(alice.id)
	const n = 300
	specs := make([]api.TaskSpec, n)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "slow", Site: "b", InputBase64: []byte(fmt.Sprint(i))}
	}
	var ids []string
	for i := 0; i < n; i += 100 {
		got, err := ac.Submit(ctxT(t, 10*time.Second), specs[i:i+100])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	// Kill b once some tasks ended there and many did not.
	deadline := time.Now().Add(time.Minute)
	for {
		ts, err := ac.Tasks(ctxT(t, 10*time.Second), api.TasksRequest{IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, tk := range ts {
			if tk.State.Final() {
				done++
			}
		}
		if done >= 10 {
			if done == n {
				t.Fatal("every task ended before b could be killed; make them slower")
			}
			t.Logf("killing b with %d of %d tasks final at a", done, n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no task ended at b within a minute:\n%s", b.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.kill9()
	time.Sleep(time.Second) // a finds b gone and retries
	b.start()

	for i, tk := range waitTasks(t, ac, ids, 3*time.Minute) {
		if tk.State != api.StateSucceeded || string(tk.Output) != fmt.Sprint(i) {
			t.Errorf("task %d: %s %q %q; want succeeded %q", i, tk.State, tk.Output, tk.Error, fmt.Sprint(i))
		}
	}
	b.stop()
	byOrigin, final := countOrigins(t, b)
	if len(byOrigin) != n || final != n {
		t.Errorf("b stores %d forwarded tasks, %d final; want %d, all final", len(byOrigin), final, n)
	}
	for _, id := range ids {
		if c := byOrigin["a/"+id]; c != 1 {
			t.Errorf("b stores task a/%s %d times, want once", id, c)
		}
	}
}

// A task for site "any" goes where its data is: sites b and c both offer
// the function, c's cache holds the dataset (staged from a URL), so the
// task runs at c; without data it goes to b (equal load, by name).
func TestFederationDataLocality(t *testing.T) {
	tenants, aRules := newTenants(t, 1)
	alice := tenants[0]
	remote, remoteRules := newTenants(t, 1) // the same account at b and c
	bob := remote[0]
	remoteRules += fmt.Sprintf("\n[[auth.map]]\nmatch = %q\naccount = %q\n", alice.user.Name+"@a", bob.user.Name)
	dataset := []byte("the beam run's dataset\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(dataset) }))
	defer srv.Close()
	cacheCfg := fmt.Sprintf("\n[cache]\nurls = [%q]\n", srv.URL+"/")

	f := newFederation(t, "a", "b", "c")
	b := f.site("b", remoteRules+cacheCfg, f.section("b", []string{"a"}, ""))
	c := f.site("c", remoteRules+cacheCfg, f.section("c", []string{"a"}, ""))
	a := f.site("a", aRules, f.section("a", []string{"b", "c"}, ""))
	fn := api.FunctionSpec{Name: "analyse", Federated: true, Command: []string{"/bin/sh", "-c", `cat "$FXD_DATA/d" 2>/dev/null || echo no data`}}
	register(t, b.client(bob.id), fn)
	cc := c.client(bob.id)
	register(t, cc, fn)
	e, err := cc.StageData(ctxT(t, 30*time.Second), api.StageRequest{Source: srv.URL + "/run42"})
	if err != nil {
		t.Fatal(err)
	}

	ac := a.client(alice.id)
	ref := bob.user.Name + "/analyse"
	waitOffers(t, ac, "b", ref)
	waitOffers(t, ac, "c", ref)
	deadline := time.Now().Add(30 * time.Second)
	for !offersData(t, ac, "c", e.Digest) {
		if time.Now().After(deadline) {
			t.Fatalf("a does not see c offer %s", e.Digest)
		}
		time.Sleep(100 * time.Millisecond)
	}
	task, err := ac.Run(ctxT(t, time.Minute), ref, api.TaskSpec{Site: api.SiteAny, Data: []api.DataRef{{Ref: e.Digest, Path: "d"}}})
	if err != nil || task.State != api.StateSucceeded || task.Site != "c" || string(task.Output) != string(dataset) {
		t.Errorf("task with c's data: %+v, %v; want succeeded at c with the dataset", task, err)
	}
	task, err = ac.Run(ctxT(t, time.Minute), ref, api.TaskSpec{Site: api.SiteAny})
	if err != nil || task.State != api.StateSucceeded || task.Site != "b" {
		t.Errorf("task without data: %+v, %v; want succeeded at b", task, err)
	}
}

// offersData says whether c sees peer offer the data digest.
func offersData(t *testing.T, c *api.Client, peer, digest string) bool {
	sites, err := c.Sites(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sites.Peers {
		if p.Name == peer && p.Offers != nil && slices.Contains(p.Offers.Data, digest) {
			return true
		}
	}
	return false
}

// servedFingerprint dials site's peer endpoint as peer "as" and returns
// the fingerprint of the certificate it serves.
func servedFingerprint(t *testing.T, f *fedSites, site, as string) string {
	t.Helper()
	mine, err := tls.LoadX509KeyPair(filepath.Join(f.pki, as, as+".pem"), filepath.Join(f.pki, as, as+".key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(f.ca)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", f.addr(site),
		federation.ClientTLS(mine, federation.Peer{Name: site, Roots: roots}, time.Now))
	if err != nil {
		t.Fatalf("dial %s: %v", site, err)
	}
	defer conn.Close()
	return federation.Fingerprint(conn.ConnectionState().PeerCertificates[0])
}

// SIGHUP rotates a site's federation certificate without a restart: new
// links see the new one, and forwarding goes on.
func TestFederationCertRotation(t *testing.T) {
	p := newPair(t, 1, "", "")
	f, a, b, alice, bob := p.f, p.a, p.b, p.alice, p.bob
	register(t, b.client(bob.id), api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}})
	ac := a.client(alice.id)
	if task, err := ac.Run(ctxT(t, time.Minute), "echo", api.TaskSpec{Site: "b", InputBase64: []byte("before")}); err != nil || task.State != api.StateSucceeded {
		t.Fatalf("before the rotation: %+v, %v", task, err)
	}
	before := servedFingerprint(t, f, "b", "a")

	// b's admin makes a new key and has the CA sign it, then reloads.
	bdir := filepath.Join(f.pki, "b")
	for _, name := range []string{"b.key", "b.csr", "b.pem"} {
		if err := os.Rename(filepath.Join(bdir, name), filepath.Join(bdir, "old-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	if out, stderr, code := fxdRun(t, "federation", "init", "--site", "b", "--dir", bdir, "--host", "127.0.0.1"); code != 0 {
		t.Fatalf("init b again: %d %s %s", code, out, stderr)
	}
	cert, stderr, code := fxdRun(t, "federation", "sign", "--ca-cert", f.ca, "--ca-key", filepath.Join(f.pki, "a", "federation-ca.key"), filepath.Join(bdir, "b.csr"))
	if code != 0 {
		t.Fatalf("sign: %d %s", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(bdir, "b.pem"), []byte(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for servedFingerprint(t, f, "b", "a") == before {
		if time.Now().After(deadline) {
			t.Fatalf("b serves its old certificate 10s after SIGHUP:\n%s", b.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	newLeaf, err := federation.ParseCert([]byte(cert))
	if err != nil {
		t.Fatal(err)
	}
	if got := servedFingerprint(t, f, "b", "a"); got != federation.Fingerprint(newLeaf) {
		t.Errorf("b serves %s, want the new certificate %s", got, federation.Fingerprint(newLeaf))
	}
	if task, err := ac.Run(ctxT(t, time.Minute), "echo", api.TaskSpec{Site: "b", InputBase64: []byte("after")}); err != nil || task.State != api.StateSucceeded {
		t.Errorf("after the rotation: %+v, %v", task, err)
	}

	// b pins another certificate for a and reloads: a is refused at once,
	// on the connections it keeps open too.
	cfg, err := os.ReadFile(b.configPath())
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.Replace(string(cfg), "[[federation.peer]]\nname = \"a\"\n",
		"[[federation.peer]]\nname = \"a\"\nfingerprint = \"sha256:"+strings.Repeat("ab", 32)+"\"\n", 1)
	if pinned == string(cfg) {
		t.Fatal("b's config has no peer a to pin")
	}
	if err := os.WriteFile(b.configPath(), []byte(pinned), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		task, err := ac.Run(ctxT(t, time.Minute), "echo", api.TaskSpec{Site: "b", InputBase64: []byte("pinned away")})
		if err == nil && task.State == api.StateFailed && strings.Contains(task.Error, "is not the pinned one") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a still runs at b 10s after b pinned another certificate: %+v, %v", task, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A peer that goes away fails, after federation.retry_deadline, the tasks
// it had accepted (they may have run there) and those it never got, each
// saying so.
func TestFederationPeerDown(t *testing.T) {
	p := newPair(t, 1, `retry_deadline = "3s"`, "")
	a, b, alice, bob := p.a, p.b, p.alice, p.bob
	register(t, b.client(bob.id), api.FunctionSpec{Name: "long", Command: []string{"/bin/sleep", "5"}})
	ac := a.client(alice.id)
	ids, err := ac.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "long", Site: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tk, err := ac.Task(ctxT(t, 10*time.Second), ids[0], 0)
		if err != nil {
			t.Fatal(err)
		}
		if tk.RemoteID != "" && tk.State == api.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task not running at b after 30s: %+v", tk)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.kill9()
	if _, err := ac.Run(ctxT(t, 30*time.Second), "long", api.TaskSpec{Site: "b"}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "fx submit --site b") {
		t.Errorf("sync run at a peer that is down: %v; want unavailable, suggesting fx submit", err)
	}
	later, err := ac.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "long", Site: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := waitTasks(t, ac, append(ids, later...), time.Minute)
	if tk := ts[0]; tk.State != api.StateFailed || !strings.Contains(tk.Error, "site b accepted the task as "+tk.RemoteID) ||
		!strings.Contains(tk.Error, "may have run there") || !strings.Contains(tk.Error, "retry_deadline") {
		t.Errorf("accepted task: %s %q; want failed: accepted, may have run there", tk.State, tk.Error)
	}
	if tk := ts[1]; tk.State != api.StateFailed || !strings.Contains(tk.Error, "not run: forwarding it to site b has failed since") || tk.RemoteID != "" {
		t.Errorf("unsent task: %s %q (remote %q); want failed: forwarding has failed", tk.State, tk.Error, tk.RemoteID)
	}
	// b comes back and cleans up the worker the kill left.
	b.start()
}

// netnsPair makes two network namespaces joined by a veth pair, the
// first 10.x.y.1/30, the second 10.x.y.2/30, each with its loopback up;
// they are deleted when the test ends. It returns their names and
// addresses.
func netnsPair(t *testing.T) (names, addrs [2]string) {
	t.Helper()
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip")
	testenv.RequireCommand(t, "nsenter") // site.start runs fxd through it
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	tag := randomName("")[:6]
	x, y := 1+int(tag[0])%200, 1+int(tag[1])*4%250
	for i := range names {
		names[i] = fmt.Sprintf("fxdt%s%c", tag, 'a'+i)
		addrs[i] = fmt.Sprintf("10.%d.%d.%d", x, y, i+1)
		run("netns", "add", names[i])
		t.Cleanup(func() { exec.Command(ip, "netns", "del", names[i]).Run() })
		run("-n", names[i], "link", "set", "lo", "up")
	}
	veth := [2]string{"fxv" + tag + "a", "fxv" + tag + "b"}
	run("link", "add", veth[0], "netns", names[0], "type", "veth", "peer", "name", veth[1], "netns", names[1])
	for i := range names {
		run("-n", names[i], "addr", "add", addrs[i]+"/30", "dev", veth[i])
		run("-n", names[i], "link", "set", veth[i], "up")
	}
	return names, addrs
}

// Sites in network namespaces of their own, joined by a veth pair: the
// peer link needs nothing of loopback. The test reaches each daemon on
// its unix socket, which the namespaces share with the host.
func TestFederationNetns(t *testing.T) {
	names, addrs := netnsPair(t)
	tenants, aRules := newTenants(t, 1)
	bTenants, bRules := newTenants(t, 1)
	alice, bob := tenants[0], bTenants[0]
	bRules += fmt.Sprintf("\n[[auth.map]]\nmatch = %q\naccount = %q\n", alice.user.Name+"@a", bob.user.Name)
	f := newFederation(t, "a", "b")
	f.netns["a"], f.addrs["a"] = names[0], addrs[0]
	f.netns["b"], f.addrs["b"] = names[1], addrs[1]
	b := f.site("b", bRules, f.section("b", []string{"a"}, ""))
	a := f.site("a", aRules, f.section("a", []string{"b"}, ""))
	register(t, b.client(bob.id), api.FunctionSpec{Name: "where", Command: []string{"/bin/sh", "-c", "id -un; cat"}})
	ac := a.client(alice.id)
	task, err := ac.Run(ctxT(t, time.Minute), "where", api.TaskSpec{Site: "b", InputBase64: []byte("over veth")})
	if err != nil || task.State != api.StateSucceeded || string(task.Output) != bob.user.Name+"\nover veth" {
		t.Fatalf("sync run across namespaces: %+v, %v", task, err)
	}
	ids, err := ac.Submit(ctxT(t, 10*time.Second), []api.TaskSpec{{Function: "where", Site: "b", InputBase64: []byte("1")}, {Function: "where", Site: "b", InputBase64: []byte("2")}})
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range waitTasks(t, ac, ids, time.Minute) {
		if tk.State != api.StateSucceeded || string(tk.Output) != fmt.Sprintf("%s\n%d", bob.user.Name, i+1) {
			t.Errorf("forwarded task %d: %s %q %q", i, tk.State, tk.Output, tk.Error)
		}
	}
	// The host reaches neither peer endpoint: the link went over the veth.
	if c, err := net.DialTimeout("tcp", f.addr("b"), time.Second); err == nil {
		c.Close()
		t.Errorf("the host reached b's peer endpoint at %s; want it only inside the namespaces", f.addr("b"))
	}
}

// A peer whose queue for the account is full takes part of a batch and
// refuses the rest as unavailable: those are sent again as its queue
// drains, and every task runs once.
func TestFederationPeerBusy(t *testing.T) {
	p := newPair(t, 1, "", "\n[tenants.default]\nmax_queued = 5\n")
	register(t, p.b.client(p.bob.id), api.FunctionSpec{Name: "slow", Command: []string{"/bin/sh", "-c", "sleep 0.2; cat"}})
	ac := p.a.client(p.alice.id)
	const n = 20
	specs := make([]api.TaskSpec, n)
	for i := range specs {
		specs[i] = api.TaskSpec{Function: "slow", Site: "b", InputBase64: []byte(fmt.Sprint(i))}
	}
	ids, err := ac.Submit(ctxT(t, 10*time.Second), specs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range waitTasks(t, ac, ids, 2*time.Minute) {
		if tk.State != api.StateSucceeded || string(tk.Output) != fmt.Sprint(i) {
			t.Errorf("task %d: %s %q %q", i, tk.State, tk.Output, tk.Error)
		}
	}
	if !strings.Contains(p.a.logs(), "peer cannot take tasks now") {
		t.Errorf("b never refused a task as busy: the test no longer proves the retry")
	}
}
