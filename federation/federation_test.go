package federation

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// fedCA is a federation CA of a test.
type fedCA struct {
	certPEM []byte
	key     *ecdsa.PrivateKey
	pool    *x509.CertPool
}

func newFedCA(t *testing.T, name string, now time.Time) fedCA {
	t.Helper()
	certPEM, key, err := NewCA(name, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("CA certificate does not parse")
	}
	return fedCA{certPEM: certPEM, key: key, pool: pool}
}

// issue makes site name's key and request, and its certificate signed by
// ca, valid from at for validity.
func (ca fedCA) issue(t *testing.T, name string, at time.Time, validity time.Duration) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(name, []string{"127.0.0.1", "login1.example.org"}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := Sign(ca.certPEM, ca.key, csr, at, validity)
	if err != nil {
		t.Fatalf("Sign(%s) = %v", name, err)
	}
	keyPEM, err := KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, leaf
}

// handshake runs a mutual TLS handshake between a client and a server
// config over loopback TCP and returns each side's error.
func handshake(t *testing.T, client, server *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		srv := tls.Server(conn, server)
		err = srv.Handshake()
		if err == nil {
			io.Copy(io.Discard, srv) // until the client hangs up
		}
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(conn, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		// In TLS 1.3 the server checks the client's certificate after the
		// client has finished: a read shows whether the server refused it.
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil && !isTimeout(err) {
			clientErr = err
		}
	}
	conn.Close()
	return clientErr, <-done
}

// isTimeout says err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// The sign chain names the site and serves both ends of a link; a
// request that names no site, or a key file of another kind, is refused.
func TestSign(t *testing.T) {
	now := time.Now()
	ca := newFedCA(t, "fed", now)
	_, leaf := ca.issue(t, "alcf", now, time.Hour)
	if site, err := SiteOf(leaf); err != nil || site != "alcf" {
		t.Errorf("SiteOf = %q, %v; want alcf", site, err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.pool, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("verify for usage %v: %v", u, err)
		}
	}
	if len(leaf.IPAddresses) != 1 || len(leaf.DNSNames) != 1 {
		t.Errorf("hosts = %v %v, want the request's", leaf.IPAddresses, leaf.DNSNames)
	}
	key, _ := NewKey()
	if _, err := NewCSR("Not A Site", nil, key); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("NewCSR(bad name) = %v, want api.ErrInvalid", err)
	}
	if _, err := Sign(ca.certPEM, ca.key, []byte("not a request"), now, time.Hour); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Sign(garbage) = %v, want api.ErrInvalid", err)
	}
	if _, err := ParseKey(ca.certPEM); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("ParseKey(a certificate) = %v, want api.ErrInvalid", err)
	}
	pemKey, _ := KeyPEM(key)
	if back, err := ParseKey(pemKey); err != nil || !back.Equal(key) {
		t.Errorf("ParseKey(KeyPEM(k)) = %v; want k back", err)
	}
}

// Peer links are mutual TLS 1.3 between listed peers: a foreign CA, an
// expired certificate, a certificate of another site than the one dialled,
// a site that is no peer, and a wrong pinned fingerprint are refused; a
// pinned fingerprint alone admits.
func TestPeerTLS(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	fed, foreign := newFedCA(t, "fed", now), newFedCA(t, "foreign", now)
	aCert, aLeaf := fed.issue(t, "a", now, time.Hour)
	bCert, bLeaf := fed.issue(t, "b", now, time.Hour)
	cCert, _ := fed.issue(t, "c", now, time.Hour)
	impostor, _ := foreign.issue(t, "a", now, time.Hour)
	expired, _ := fed.issue(t, "a", now.Add(-3*time.Hour), time.Hour)

	peersOfB := []Peer{{Name: "a", Roots: fed.pool}}
	tests := []struct {
		name     string
		client   *tls.Config
		server   *tls.Config
		accepted bool
	}{
		{"a to b", ClientTLS(aCert, Peer{Name: "b", Roots: fed.pool}, clock), ServerTLS(bCert, peersOfB, clock), true},
		{"a to b, pinned", ClientTLS(aCert, Peer{Name: "b", Fingerprint: Fingerprint(bLeaf)}, clock),
			ServerTLS(bCert, []Peer{{Name: "a", Fingerprint: Fingerprint(aLeaf)}}, clock), true},
		{"foreign CA", ClientTLS(impostor, Peer{Name: "b", Roots: fed.pool}, clock), ServerTLS(bCert, peersOfB, clock), false},
		{"expired", ClientTLS(expired, Peer{Name: "b", Roots: fed.pool}, clock), ServerTLS(bCert, peersOfB, clock), false},
		{"not a peer", ClientTLS(cCert, Peer{Name: "b", Roots: fed.pool}, clock), ServerTLS(bCert, peersOfB, clock), false},
		{"server is another site", ClientTLS(aCert, Peer{Name: "b", Roots: fed.pool}, clock), ServerTLS(cCert, peersOfB, clock), false},
		{"wrong pin", ClientTLS(aCert, Peer{Name: "b", Fingerprint: Fingerprint(aLeaf)}, clock), ServerTLS(bCert, peersOfB, clock), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cerr, serr := handshake(t, tt.client, tt.server)
			if ok := cerr == nil && serr == nil; ok != tt.accepted {
				t.Errorf("handshake: client %v, server %v; want accepted %v", cerr, serr, tt.accepted)
			}
		})
	}
	// TLS 1.2 is refused outright.
	old := ClientTLS(aCert, Peer{Name: "b", Roots: fed.pool}, clock)
	old.MaxVersion, old.MinVersion = tls.VersionTLS12, tls.VersionTLS12
	if cerr, _ := handshake(t, old, ServerTLS(bCert, peersOfB, clock)); cerr == nil {
		t.Error("a TLS 1.2 client was accepted")
	}
}

// FuzzSign: a certificate request from outside (another site's admin)
// never panics Sign, and what Sign accepts names a site.
func FuzzSign(f *testing.F) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	caPEM, caKey, err := NewCA("fed", now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	key, _ := NewKey()
	csr, _ := NewCSR("alcf", []string{"127.0.0.1"}, key)
	f.Add(csr)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add(caPEM)
	f.Fuzz(func(t *testing.T, in []byte) {
		cert, err := Sign(caPEM, caKey, in, now, time.Hour)
		if err != nil {
			return
		}
		c, err := ParseCert(cert)
		if err != nil {
			t.Fatalf("Sign made a certificate that does not parse: %v", err)
		}
		if _, err := SiteOf(c); err != nil {
			t.Fatalf("Sign made a certificate that names no site: %v", err)
		}
	})
}
