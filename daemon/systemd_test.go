package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/testenv"
)

// listenNotify listens on a notify socket and points NOTIFY_SOCKET at it
// for the rest of the test.
func listenNotify(t *testing.T) *testenv.NotifySocket {
	t.Helper()
	n := testenv.ListenNotify(t)
	t.Setenv("NOTIFY_SOCKET", n.Path)
	return n
}

// await returns the next datagram on n that has the line want, and those
// before it, failing the test if none comes within timeout.
func await(t *testing.T, n *testenv.NotifySocket, want string, timeout time.Duration) (msg string, skipped []string) {
	t.Helper()
	msg, skipped, err := n.Await(t, want, timeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg, skipped
}

func TestNotify(t *testing.T) {
	t.Run("without systemd", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", "")
		if err := notify("READY=1"); err != nil {
			t.Errorf("notify with NOTIFY_SOCKET unset = %v, want nil (a no-op)", err)
		}
	})
	t.Run("socket gone", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
		if err := notify("READY=1"); err == nil || !strings.Contains(err.Error(), "READY=1") {
			t.Errorf("notify to a missing socket = %v, want an error naming READY=1", err)
		}
	})
	t.Run("one datagram", func(t *testing.T) {
		n := listenNotify(t)
		if err := notify("READY=1", "STATUS=serving"); err != nil {
			t.Fatal(err)
		}
		if msg, _ := await(t, n, "READY=1", 5*time.Second); msg != "READY=1\nSTATUS=serving" {
			t.Errorf("datagram = %q, want %q", msg, "READY=1\nSTATUS=serving")
		}
	})
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		wantErr         bool
	}{
		{name: "unset", want: 0},
		{name: "pid unset", usec: "20000000", want: 10 * time.Second},
		{name: "pid is ours", usec: "20000000", pid: self, want: 10 * time.Second},
		{name: "pid is another process", usec: "20000000", pid: strconv.Itoa(os.Getpid() + 1), want: 0},
		{name: "garbage", usec: "soon", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, err := watchdogInterval()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("watchdogInterval() with WATCHDOG_USEC=%q WATCHDOG_PID=%q = %v, %v; want %v (error: %v)",
					tc.usec, tc.pid, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// The watchdog pings every interval, skips pings while the store does not
// answer, and stops with its context.
func TestWatchdogLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var pings []time.Duration
		var storeErr error
		start := time.Now()
		alive := func() error { mu.Lock(); defer mu.Unlock(); return storeErr }
		ping := func() error { mu.Lock(); defer mu.Unlock(); pings = append(pings, time.Since(start)); return nil }
		setStoreErr := func(err error) { mu.Lock(); defer mu.Unlock(); storeErr = err }
		check := func(when string, want ...time.Duration) {
			t.Helper()
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(pings) != fmt.Sprint(want) {
				t.Errorf("%s: pings at %v, want %v", when, pings, want)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			watchdogLoop(ctx, 5*time.Second, alive, ping, zerolog.New(zerolog.NewTestWriter(t)))
			close(done)
		}()

		time.Sleep(11 * time.Second)
		check("store answering", 5*time.Second, 10*time.Second)
		setStoreErr(errors.New("store stuck"))
		time.Sleep(10 * time.Second)
		check("store stuck", 5*time.Second, 10*time.Second)
		setStoreErr(nil)
		time.Sleep(5 * time.Second)
		check("store back", 5*time.Second, 10*time.Second, 25*time.Second)
		cancel()
		<-done
		time.Sleep(time.Minute)
		check("after stop", 5*time.Second, 10*time.Second, 25*time.Second)
	})
}

// The daemon tells systemd READY=1 (with a STATUS line) once it serves,
// pings the watchdog when WATCHDOG_USEC asks for it, and says STOPPING=1
// when it shuts down.
func TestNotifyLifecycle(t *testing.T) {
	n := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000") // 200ms: a ping every 100ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	d, stop := runTestDaemon(t, nil)
	socket := d.cfg.Endpoint.Socket

	ready, before := await(t, n, "READY=1", 20*time.Second)
	for _, m := range before {
		if testenv.NotifyHasLine(m, "STOPPING=1") {
			t.Errorf("STOPPING=1 before READY=1: %q", before)
		}
	}
	if want := "STATUS=serving on unix:" + socket; !testenv.NotifyHasLine(ready, want) {
		t.Errorf("READY datagram = %q, want the line %q in it", ready, want)
	}
	// READY means serving: the socket answers now, with no retries.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := c.Get("http://fxd/healthz")
	if err != nil {
		t.Fatalf("GET /healthz right after READY=1: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz right after READY=1 = %d %q, want 200", resp.StatusCode, body)
	}

	await(t, n, "WATCHDOG=1", 5*time.Second)
	await(t, n, "WATCHDOG=1", 5*time.Second)

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	await(t, n, "STOPPING=1", 10*time.Second)
	if err := <-stopped; err != nil {
		t.Errorf("Run after shutdown = %v, want nil", err)
	}
}

// serverCert writes a server certificate for 127.0.0.1 and its key in dir.
func serverCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	return testenv.NewCA(t, dir, "site").Issue(t, "fxd-test", testenv.ServerCert)
}

// inheritUnix binds a unix socket as systemd would (mode 0666, the default
// of SocketMode=) and returns it as an inherited listener; the test
// removes the file, never the listener.
func inheritUnix(t *testing.T, path string) inheritedListener {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); os.Remove(path) })
	return inheritedListener{ln: ln, desc: "fd 3 unix:" + path}
}

func inheritTCP(t *testing.T, addr string) inheritedListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return inheritedListener{ln: ln, desc: "fd 4 tcp:" + ln.Addr().String()}
}

// Inherited sockets replace the endpoints whose address they have; the
// rest is opened as usual; one the config does not name is an error.
func TestActivationListeners(t *testing.T) {
	type setup struct {
		ep        conf.Endpoint
		inherited []inheritedListener
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) setup
		want  []string // addrs(), with dir written as DIR and the TCP port as PORT
		err   []string // substrings of the error
	}{
		{
			name: "unix socket at endpoint.socket",
			setup: func(t *testing.T, dir string) setup {
				return setup{conf.Endpoint{Socket: dir + "/fxd.sock", SocketMode: 0o666}, []inheritedListener{inheritUnix(t, dir+"/fxd.sock")}}
			},
			want: []string{"unix:DIR/fxd.sock (systemd)"},
		},
		{
			name: "unix socket through a symlinked dir",
			setup: func(t *testing.T, dir string) setup {
				if err := os.Symlink(dir, dir+"/link"); err != nil {
					t.Fatal(err)
				}
				return setup{conf.Endpoint{Socket: dir + "/link/fxd.sock", SocketMode: 0o666}, []inheritedListener{inheritUnix(t, dir+"/fxd.sock")}}
			},
			want: []string{"unix:DIR/fxd.sock (systemd)"},
		},
		{
			name: "tcp socket at endpoint.listen; fxd opens the unix socket",
			setup: func(t *testing.T, dir string) setup {
				cert, key := serverCert(t, dir)
				in := inheritTCP(t, "127.0.0.1:0")
				return setup{conf.Endpoint{Socket: dir + "/own.sock", SocketMode: 0o666, Listen: in.ln.Addr().String(), TLSCert: cert, TLSKey: key},
					[]inheritedListener{in}}
			},
			want: []string{"unix:DIR/own.sock", "tcp:127.0.0.1:PORT (systemd)"},
		},
		{
			name: "tcp wildcard matches :port",
			setup: func(t *testing.T, dir string) setup {
				cert, key := serverCert(t, dir)
				in := inheritTCP(t, "0.0.0.0:0")
				port := in.ln.Addr().(*net.TCPAddr).Port
				return setup{conf.Endpoint{Listen: fmt.Sprintf(":%d", port), TLSCert: cert, TLSKey: key}, []inheritedListener{in}}
			},
			want: []string{"tcp:ADDR (systemd)"}, // [::]:PORT where IPv6 is on, else 0.0.0.0:PORT
		},
		{
			name: "unix socket at another path",
			setup: func(t *testing.T, dir string) setup {
				return setup{conf.Endpoint{Socket: dir + "/fxd.sock", SocketMode: 0o666}, []inheritedListener{inheritUnix(t, dir+"/other.sock")}}
			},
			err: []string{"fd 3 unix:DIR/other.sock", "matches neither endpoint.socket", "ListenStream="},
		},
		{
			name: "tcp socket with no endpoint.listen",
			setup: func(t *testing.T, dir string) setup {
				return setup{conf.Endpoint{Socket: dir + "/fxd.sock", SocketMode: 0o666}, []inheritedListener{inheritTCP(t, "127.0.0.1:0")}}
			},
			err: []string{"fd 4 tcp:127.0.0.1:PORT", `endpoint.listen ""`},
		},
		{
			name: "two sockets for endpoint.socket",
			setup: func(t *testing.T, dir string) setup {
				a := inheritUnix(t, dir+"/fxd.sock")
				os.Remove(dir + "/fxd.sock")
				b := inheritUnix(t, dir+"/fxd.sock")
				b.desc = "fd 4 unix:" + dir + "/fxd.sock"
				return setup{conf.Endpoint{Socket: dir + "/fxd.sock", SocketMode: 0o666}, []inheritedListener{a, b}}
			},
			err: []string{"fd 3 unix:DIR/fxd.sock and fd 4 unix:DIR/fxd.sock both match endpoint.socket"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := tc.setup(t, dir)
			port, addr := "", ""
			for _, in := range s.inherited {
				if a, ok := in.ln.Addr().(*net.TCPAddr); ok {
					port, addr = strconv.Itoa(a.Port), a.String()
				}
			}
			expand := strings.NewReplacer("DIR", dir, "PORT", port, "ADDR", addr).Replace
			var inodes = map[string]uint64{}
			for _, in := range s.inherited {
				if a, ok := in.ln.Addr().(*net.UnixAddr); ok {
					inodes[a.Name] = testenv.SocketInode(t, a.Name)
				}
			}
			d := &Daemon{cfg: &conf.Config{Endpoint: s.ep}, log: zerolog.New(zerolog.NewTestWriter(t))}
			l, err := d.listenOn(s.inherited)
			if tc.err != nil {
				if err == nil {
					l.close()
					t.Fatalf("listenOn = %v, want an error", l.addrs())
				}
				for _, want := range tc.err {
					if !strings.Contains(err.Error(), expand(want)) {
						t.Errorf("listenOn error = %q, want it to say %q", err, expand(want))
					}
				}
				for _, in := range s.inherited {
					if _, err := in.ln.Accept(); !errors.Is(err, net.ErrClosed) {
						t.Errorf("inherited %s after a refused start: Accept = %v, want it closed", in.desc, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("listenOn: %v", err)
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, expand(w))
			}
			if got := l.addrs(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("listeners = %q, want %q", got, want)
			}
			for i, ln := range l.all() {
				if _, ok := ln.Addr().(*net.TCPAddr); ok {
					checkTLSHandshake(t, ln)
				} else if l.activated[i] && l.socketPath == ln.Addr().String() {
					t.Errorf("socketPath = %q for a socket from systemd; fxd would remove it at exit", l.socketPath)
				}
			}
			l.close()
			for path, ino := range inodes {
				if got := testenv.SocketInode(t, path); got != ino {
					t.Errorf("socket file %s replaced (inode %d, was %d); it belongs to systemd", path, got, ino)
				}
			}
		})
	}
}

// checkTLSHandshake completes a TLS handshake with ln.
func checkTLSHandshake(t *testing.T, ln net.Listener) {
	t.Helper()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc, ok := c.(*tls.Conn)
		if !ok {
			accepted <- fmt.Errorf("accepted a %T, want *tls.Conn", c)
			return
		}
		accepted <- tc.Handshake()
	}()
	addr := ln.Addr().(*net.TCPAddr)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp",
		net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port)), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Errorf("TLS handshake with %s: %v", addr, err)
	} else {
		c.Close()
	}
	if err := <-accepted; err != nil {
		t.Errorf("server side of the TLS handshake on %s: %v", addr, err)
	}
}

// What systemd passes must be a listening stream socket.
func TestInheritedListenersRefuseNonStream(t *testing.T) {
	dir := t.TempDir()
	gram, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dir + "/gram.sock", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer gram.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good := inheritUnix(t, dir+"/good.sock")

	var files []*os.File
	for _, c := range []interface{ File() (*os.File, error) }{good.ln.(*net.UnixListener), gram, conn.(*net.TCPConn)} {
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	_, err = inheritedListeners(files)
	if err == nil {
		t.Fatal("inheritedListeners accepted a datagram socket and a connected TCP socket")
	}
	for _, want := range []string{"fd 4", "unixgram socket, not a stream socket", "fd 5", "is not listening", "ListenStream="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("inheritedListeners error = %q, want it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "fd 3") {
		t.Errorf("inheritedListeners error = %q names the good socket fd 3", err)
	}
}

func TestSameTCPAddr(t *testing.T) {
	for _, tc := range []struct {
		configured string
		bound      net.TCPAddr
		want       bool
	}{
		{"127.0.0.1:8443", net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}, true},
		{"127.0.0.1:8443", net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8444}, false},
		{"127.0.0.1:8443", net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 8443}, false},
		{"127.0.0.1:8443", net.TCPAddr{IP: net.IPv4zero, Port: 8443}, false},
		{":8443", net.TCPAddr{IP: net.IPv6unspecified, Port: 8443}, true},
		{":8443", net.TCPAddr{IP: net.IPv4zero, Port: 8443}, true},
		{":8443", net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}, false},
		{"0.0.0.0:8443", net.TCPAddr{IP: net.IPv6unspecified, Port: 8443}, true},
		{"[::]:8443", net.TCPAddr{IP: net.IPv4zero, Port: 8443}, true},
		{"[::1]:8443", net.TCPAddr{IP: net.IPv6loopback, Port: 8443}, true},
		{"localhost:8443", net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}, true},
		{"127.0.0.1:https", net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443}, true},
		{"", net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}, false},
	} {
		if got := sameTCPAddr(tc.configured, &tc.bound); got != tc.want {
			t.Errorf("sameTCPAddr(%q, %v) = %v, want %v", tc.configured, &tc.bound, got, tc.want)
		}
	}
}
