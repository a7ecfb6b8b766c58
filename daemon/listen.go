package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// listeners are the endpoint's sockets: from systemd socket activation when
// present, else opened from [endpoint].
type listeners struct {
	lns        []net.Listener
	socketPath string // unix socket we created and must remove
}

func (l *listeners) all() []net.Listener { return l.lns }

func (l *listeners) addrs() []string {
	var out []string
	for _, ln := range l.lns {
		out = append(out, ln.Addr().Network()+":"+ln.Addr().String())
	}
	return out
}

func (l *listeners) close() {
	for _, ln := range l.lns {
		ln.Close()
	}
	if l.socketPath != "" {
		os.Remove(l.socketPath)
	}
}

func (d *Daemon) listen() (*listeners, error) {
	activated, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	l := &listeners{}
	if len(activated) > 0 {
		for _, ln := range activated {
			if ln == nil {
				continue
			}
			if _, unix := ln.(*net.UnixListener); !unix {
				tlsCfg, err := d.tlsConfig()
				if err != nil {
					return nil, fmt.Errorf("socket-activated %s: %w", ln.Addr(), err)
				}
				ln = tls.NewListener(ln, tlsCfg)
			}
			l.lns = append(l.lns, ln)
		}
		return l, nil
	}
	ep := d.cfg.Endpoint
	if ep.Socket != "" {
		ln, err := listenUnix(ep.Socket, os.FileMode(ep.SocketMode))
		if err != nil {
			return nil, err
		}
		l.lns, l.socketPath = append(l.lns, ln), ep.Socket
	}
	if ep.Listen != "" {
		tlsCfg, err := d.tlsConfig()
		if err != nil {
			l.close()
			return nil, err
		}
		ln, err := tls.Listen("tcp", ep.Listen, tlsCfg)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("listen on endpoint.listen %s: %w", ep.Listen, err)
		}
		l.lns = append(l.lns, ln)
	}
	return l, nil
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
