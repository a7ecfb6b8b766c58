package federation

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
)

// Trust is a site's TLS material for peer links: its own certificate and
// the peers it knows, with what each may do. A reload (SIGHUP) builds a
// new Trust and swaps it whole; links take it up at their next handshake.
type Trust struct {
	Site  string
	Cert  tls.Certificate
	Peers []Peer
	// Allow holds, by peer name, what the peer may do here
	// (api.AllowRun, api.AllowDiscover).
	Allow map[string][]string

	// checked memoizes Check by leaf fingerprint: a Trust never changes,
	// and a link's certificate neither.
	mu      sync.Mutex
	checked map[string]checkResult
}

type checkResult struct {
	site string
	err  error
}

// maxChecked bounds the certificates Check remembers.
const maxChecked = 1024

// Check verifies, against this trust, the client certificate chain a
// peer presented (leaf first) and returns the peer's site: a connection
// made under an older Trust is judged by this one, so that a peer dropped
// or re-pinned by a reload is refused on its open connections too.
func (t *Trust) Check(chain []*x509.Certificate, now time.Time) (string, error) {
	if len(chain) == 0 {
		return "", fmt.Errorf("no client certificate: %w", api.ErrUnauthenticated)
	}
	fp := Fingerprint(chain[0])
	t.mu.Lock()
	r, ok := t.checked[fp]
	t.mu.Unlock()
	if ok && r.err == nil && !now.After(chain[0].NotAfter) {
		return r.site, nil
	}
	site, err := SiteOf(chain[0])
	if err == nil {
		if p, known := t.Peer(site); !known {
			err = fmt.Errorf("site %s is not a peer of this site (federation.peer): %w", site, api.ErrDenied)
		} else {
			err = p.verify(chain, x509.ExtKeyUsageClientAuth, now)
		}
	}
	t.mu.Lock()
	if t.checked == nil || len(t.checked) >= maxChecked {
		t.checked = map[string]checkResult{}
	}
	t.checked[fp] = checkResult{site, err}
	t.mu.Unlock()
	return site, err
}

// Peer returns the peer named name.
func (t *Trust) Peer(name string) (Peer, bool) {
	i := slices.IndexFunc(t.Peers, func(p Peer) bool { return p.Name == name })
	if i < 0 {
		return Peer{}, false
	}
	return t.Peers[i], true
}

// Allowed reports whether peer may do what (api.AllowRun, …) here.
func (t *Trust) Allowed(peer, what string) bool {
	return slices.Contains(t.Allow[peer], what)
}

// LoadTrust reads the certificate, key and CA files that f names, for
// site. A peer whose allow is left out may do everything.
func LoadTrust(site string, f conf.Federation) (*Trust, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load federation.cert and federation.key: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("federation.cert %s: %w", f.Cert, err)
	}
	if named, err := SiteOf(leaf); err != nil || named != site {
		return nil, fmt.Errorf("federation.cert %s does not name site %q (%v); make one with fxd federation init --site %s: %w", f.Cert, site, orNamed(named, err), site, api.ErrInvalid)
	}
	var shared *x509.CertPool
	if f.CA != "" {
		if shared, err = loadPool(f.CA); err != nil {
			return nil, fmt.Errorf("federation.ca: %w", err)
		}
	}
	t := &Trust{Site: site, Cert: cert, Allow: map[string][]string{}}
	for i, p := range f.Peer {
		peer := Peer{Name: p.Name, Roots: shared, Fingerprint: NormalizeFingerprint(p.Fingerprint)}
		if p.CA != "" {
			if peer.Roots, err = loadPool(p.CA); err != nil {
				return nil, fmt.Errorf("federation.peer[%d].ca: %w", i, err)
			}
		} else if p.Fingerprint != "" {
			peer.Roots = nil // pinned: the CA bundle of others does not vouch for it
		}
		if peer.Roots == nil && peer.Fingerprint == "" {
			return nil, fmt.Errorf("federation.peer[%d] (%s): give its ca or fingerprint, or set federation.ca: %w", i, p.Name, api.ErrInvalid)
		}
		t.Peers = append(t.Peers, peer)
		t.Allow[p.Name] = p.Allow
		if p.Allow == nil { // left out; allow = [] allows nothing
			t.Allow[p.Name] = []string{api.AllowRun, api.AllowDiscover}
		}
	}
	return t, nil
}

func orNamed(named string, err error) string {
	if err != nil {
		return err.Error()
	}
	return "it names " + named
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it: %w", path, api.ErrInvalid)
	}
	return pool, nil
}

// ServerConfig is the TLS config of the peer endpoint: every handshake
// takes the Trust that current returns then (ServerTLS), so a reload
// applies to the next connection without a restart.
func ServerConfig(current func() *Trust, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return serverTLS(current(), now), nil
		},
	}
}

// ClientConfig is the TLS config of links this site dials to peer: like
// ClientTLS, with the certificate and the peer's identity taken from
// current at every handshake.
func ClientConfig(current func() *Trust, peer string, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // VerifyConnection checks the peer, as in ClientTLS
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := current().Cert
			return &c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			p, ok := current().Peer(peer)
			if !ok {
				return fmt.Errorf("site %s is no longer a peer (federation.peer): %w", peer, api.ErrDenied)
			}
			return p.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, now())
		},
	}
}
