package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"fxd.dev/fxd/conf"
)

// Socket activation
//
// When systemd starts fxd from a .socket unit it passes the sockets it
// opened (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; sd_listen_fds(3)). fxd
// matches them to [endpoint] by address, the way an admin reads fxd.socket
// and fxd.toml side by side:
//
//   - a unix stream socket bound to endpoint.socket (the same path after
//     cleaning, or the same file, so /var/run/fxd.sock and /run/fxd.sock
//     agree) replaces the socket fxd would create. fxd does not unlink,
//     re-create or chmod it, then or at exit: the .socket unit owns it, and
//     its SocketMode= and SocketUser= apply instead of endpoint.socket_mode.
//   - a TCP socket bound to endpoint.listen (the same port, and the same IP,
//     or wildcards on both sides: ":8443", "0.0.0.0:8443" and systemd's
//     ListenStream=8443 all mean every address; a host name is resolved)
//     replaces that listener. fxd serves HTTPS on it with tls_cert and
//     tls_key as on one it opened.
//   - an endpoint the config sets and systemd did not pass is opened by fxd as
//     usual, so fxd.socket may hand over only the unix socket.
//
// An inherited socket that matches no endpoint, two that match the same
// endpoint, or one that is not a listening stream socket (unix or TCP) is an
// error naming it, and fxd does not start. A warning would not do: systemd
// keeps the unmatched socket open and accepting, so its clients would hang
// unanswered, or, if fxd served it anyway, it would answer on an address its
// config does not name. Failing at start shows the mismatch in `systemctl
// status` at once; the fix is to make the two files agree. Names given with
// FileDescriptorName= only label sockets in messages: the address decides.

// listenFdsStart is the first file descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFdsStart = 3

// listeners are the endpoint's sockets: from systemd socket activation when
// present, else opened from [endpoint].
type listeners struct {
	lns        []net.Listener
	activated  []bool // per lns: the socket came from systemd
	socketPath string // unix socket we created and must remove
}

func (l *listeners) all() []net.Listener { return l.lns }

func (l *listeners) add(ln net.Listener, activated bool) {
	l.lns, l.activated = append(l.lns, ln), append(l.activated, activated)
}

// addrs describes the listeners for logs and systemd's STATUS line, e.g.
// "unix:/run/fxd/fxd.sock (systemd)".
func (l *listeners) addrs() []string {
	var out []string
	for i, ln := range l.lns {
		s := ln.Addr().Network() + ":" + ln.Addr().String()
		if l.activated[i] {
			s += " (systemd)"
		}
		out = append(out, s)
	}
	return out
}

// close closes the listeners and removes the unix socket fxd created; a
// socket from systemd stays, as systemd owns it.
func (l *listeners) close() {
	for _, ln := range l.lns {
		ln.Close()
	}
	if l.socketPath != "" {
		os.Remove(l.socketPath)
	}
}

func (d *Daemon) listen() (*listeners, error) {
	// Files unsets LISTEN_*, so that no process fxd starts takes the
	// sockets for its own.
	inherited, err := inheritedListeners(activation.Files(true))
	if err != nil {
		return nil, err
	}
	return d.listenOn(inherited)
}

// inheritedListener is one socket passed by systemd.
type inheritedListener struct {
	ln   net.Listener
	desc string // for messages: "fd 3 (api) unix:/run/fxd/fxd.sock"
}

// inheritedListeners turns the files systemd passed (fd 3, 4, … in order)
// into listeners. It closes the files; on error it closes the listeners
// too and names every socket that is not a listening stream socket.
func inheritedListeners(files []*os.File) ([]inheritedListener, error) {
	var out []inheritedListener
	var errs []error
	for i, f := range files {
		desc := fmt.Sprintf("fd %d", listenFdsStart+i)
		if name := f.Name(); name != "" && !strings.HasPrefix(name, "LISTEN_FD_") {
			desc += " (" + name + ")"
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err == nil {
			desc += " " + ln.Addr().Network() + ":" + ln.Addr().String()
			err = checkStreamListener(ln)
		}
		if err != nil {
			if ln != nil {
				ln.Close()
			}
			errs = append(errs, fmt.Errorf("socket-activated %s: %w", desc, err))
			continue
		}
		out = append(out, inheritedListener{ln: ln, desc: desc})
	}
	if err := errors.Join(errs...); err != nil {
		closeInherited(out)
		return nil, fmt.Errorf("%w\nfxd serves only listening stream sockets (ListenStream= in its .socket unit)", err)
	}
	return out, nil
}

// checkStreamListener refuses datagram and sequential-packet sockets and
// sockets that do not listen: Accept would fail on them only later.
func checkStreamListener(ln net.Listener) error {
	switch ln.Addr().Network() {
	case "tcp", "unix":
	default:
		return fmt.Errorf("is a %s socket, not a stream socket", ln.Addr().Network())
	}
	sc, ok := ln.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("inspect socket: %w", err)
	}
	var accepting int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		accepting, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	}); err != nil {
		return fmt.Errorf("inspect socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("read SO_ACCEPTCONN: %w", serr)
	}
	if accepting == 0 {
		return errors.New("is not listening")
	}
	return nil
}

func closeInherited(ls []inheritedListener) {
	for _, l := range ls {
		l.ln.Close()
	}
}

// listenOn matches the inherited sockets to [endpoint] (see "Socket
// activation" above) and opens what systemd did not pass.
func (d *Daemon) listenOn(inherited []inheritedListener) (*listeners, error) {
	ep := d.cfg.Endpoint
	var unixLn, tcpLn *inheritedListener
	var errs []error
	for i := range inherited {
		in := &inherited[i]
		var slot **inheritedListener
		var key, value string
		switch a := in.ln.Addr().(type) {
		case *net.UnixAddr:
			if sameSocketPath(ep.Socket, a.Name) {
				slot, key, value = &unixLn, "endpoint.socket", ep.Socket
			}
		case *net.TCPAddr:
			if sameTCPAddr(ep.Listen, a) {
				slot, key, value = &tcpLn, "endpoint.listen", ep.Listen
			}
		}
		switch {
		case slot == nil:
			errs = append(errs, fmt.Errorf("socket-activated %s matches neither endpoint.socket %q nor endpoint.listen %q", in.desc, ep.Socket, ep.Listen))
		case *slot != nil:
			errs = append(errs, fmt.Errorf("socket-activated %s and %s both match %s %q", (*slot).desc, in.desc, key, value))
		default:
			*slot = in
		}
	}
	if err := errors.Join(errs...); err != nil {
		closeInherited(inherited)
		return nil, fmt.Errorf("%w\nmake the sockets of fxd's .socket unit (ListenStream=) and [endpoint] in the config name the same addresses", err)
	}

	l := &listeners{}
	if unixLn != nil {
		l.add(unixLn.ln, true)
		d.warnSocketMode(ep)
	} else if ep.Socket != "" {
		ln, err := listenUnix(ep.Socket, os.FileMode(ep.SocketMode))
		if err != nil {
			closeInherited(inherited)
			return nil, err
		}
		l.add(ln, false)
		l.socketPath = ep.Socket
	}
	if ep.Listen != "" {
		if err := d.addHTTPS(l, tcpLn); err != nil {
			l.close()
			if tcpLn != nil {
				tcpLn.ln.Close()
			}
			return nil, err
		}
	}
	return l, nil
}

// addHTTPS adds the HTTPS listener: TLS on the inherited TCP socket if
// systemd passed one, else on a socket opened at endpoint.listen.
func (d *Daemon) addHTTPS(l *listeners, inherited *inheritedListener) error {
	tlsCfg, err := d.tlsConfig()
	if err != nil {
		return err
	}
	if inherited != nil {
		l.add(tls.NewListener(inherited.ln, tlsCfg), true)
		return nil
	}
	ln, err := tls.Listen("tcp", d.cfg.Endpoint.Listen, tlsCfg)
	if err != nil {
		return fmt.Errorf("listen on endpoint.listen %s: %w", d.cfg.Endpoint.Listen, err)
	}
	l.add(ln, false)
	return nil
}

// warnSocketMode says when endpoint.socket_mode differs from the mode
// systemd gave the socket: the unit's SocketMode= is the one that counts.
func (d *Daemon) warnSocketMode(ep conf.Endpoint) {
	st, err := os.Stat(ep.Socket)
	if err != nil || st.Mode().Perm() == os.FileMode(ep.SocketMode).Perm() {
		return
	}
	d.log.Warn().Str("socket", ep.Socket).
		Str("mode", fmt.Sprintf("%04o", uint32(st.Mode().Perm()))).
		Str("socket_mode", fmt.Sprintf("%04o", uint32(ep.SocketMode))).
		Msg("endpoint.socket_mode does not apply to a socket from systemd; set SocketMode= in fxd's .socket unit to match")
}

// sameSocketPath reports whether a unix socket bound at bound is the one
// at the configured path: the same path once cleaned, or the same file.
// Abstract and unnamed sockets never match.
func sameSocketPath(configured, bound string) bool {
	if configured == "" || bound == "" || strings.HasPrefix(bound, "@") {
		return false
	}
	if filepath.Clean(configured) == filepath.Clean(bound) {
		return true
	}
	a, err := os.Stat(configured)
	if err != nil {
		return false
	}
	b, err := os.Stat(bound)
	return err == nil && os.SameFile(a, b)
}

// sameTCPAddr reports whether a TCP socket bound at a is the one the
// configured "host:port" names: the same port, and the same IP, or an
// unspecified IP on both sides ("" and "0.0.0.0" and "::" alike). A host
// name is resolved and matches if any of its addresses does.
func sameTCPAddr(configured string, a *net.TCPAddr) bool {
	if configured == "" {
		return false
	}
	host, port, err := net.SplitHostPort(configured)
	if err != nil {
		return false
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p != a.Port {
		return false
	}
	if host == "" {
		return a.IP.IsUnspecified()
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		if ips, err = net.LookupIP(host); err != nil {
			return false
		}
	}
	for _, ip := range ips {
		if ip.Equal(a.IP) || (ip.IsUnspecified() && a.IP.IsUnspecified()) {
			return true
		}
	}
	return false
}

// listenUnix opens the unix socket, replacing a stale socket file but
// refusing to steal one a running daemon still answers on.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("endpoint.socket %s exists and is not a socket; remove it or choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("endpoint.socket %s: another fxd is serving on it; stop it first", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on endpoint.socket %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod endpoint.socket %s: %w", path, err)
	}
	return ln, nil
}

// tlsConfig loads the server certificate and client CA. The certificate is
// read again on every handshake after its file changed (rotation without
// restart).
func (d *Daemon) tlsConfig() (*tls.Config, error) {
	ep := d.cfg.Endpoint
	if ep.TLSCert == "" || ep.TLSKey == "" {
		return nil, errors.New("HTTPS needs endpoint.tls_cert and endpoint.tls_key")
	}
	certs := &certReloader{certFile: ep.TLSCert, keyFile: ep.TLSKey}
	if _, err := certs.get(nil); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
	if ep.ClientCA != "" {
		pem, err := os.ReadFile(ep.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read endpoint.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("endpoint.client_ca %s: no PEM certificate in it", ep.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}
