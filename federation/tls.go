package federation

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"fxd.dev/fxd/api"
)

// Peer is a site a link may be with, as the local config lists it: its
// name, and what identifies its certificate (the CAs that sign it, or its
// pinned fingerprint, or both).
type Peer struct {
	Name        string
	Roots       *x509.CertPool // nil: the fingerprint alone
	Fingerprint string         // Fingerprint's form; "" when Roots decide
}

// verify checks that chain (the peer's certificate first) is p's, for
// usage, at now: it names site p.Name, is valid now, and chains to
// p.Roots or has p's fingerprint.
func (p Peer) verify(chain []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("peer %s: no certificate: %w", p.Name, api.ErrUnauthenticated)
	}
	leaf := chain[0]
	site, err := SiteOf(leaf)
	if err != nil {
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	if site != p.Name {
		return fmt.Errorf("peer %s: the certificate is site %s's: %w", p.Name, site, api.ErrDenied)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("peer %s: certificate valid from %s to %s, not now; the peer must renew it: %w",
			p.Name, leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly), api.ErrDenied)
	}
	if p.Fingerprint != "" && Fingerprint(leaf) == NormalizeFingerprint(p.Fingerprint) {
		return nil
	}
	if p.Roots == nil {
		return fmt.Errorf("peer %s: certificate fingerprint %s is not the pinned one: %w", p.Name, Fingerprint(leaf), api.ErrDenied)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.Roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("peer %s: %v: %w", p.Name, err, api.ErrDenied)
	}
	return nil
}

// ServerTLS is the TLS config of this site's peer endpoint: TLS 1.3 only,
// cert as its own, and a client certificate required of every peer, which
// must be one of peers' (Trust.Check). A handler finds the peer again
// with SiteOf(r.TLS.PeerCertificates[0]).
func ServerTLS(cert tls.Certificate, peers []Peer, now func() time.Time) *tls.Config {
	return serverTLS(&Trust{Cert: cert, Peers: peers}, now)
}

func serverTLS(t *Trust, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{t.Cert},
		ClientAuth: tls.RequireAnyClientCert, // checked below, by site
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := t.Check(cs.PeerCertificates, now())
			return err
		},
	}
}

// ClientTLS is the TLS config of a link this site dials to peer: TLS 1.3
// only, cert as its own, and the server's certificate must be peer's.
func ClientTLS(cert tls.Certificate, peer Peer, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		// The standard check knows nothing of pinned fingerprints or site
		// names: VerifyConnection does all of it.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return peer.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, now())
		},
	}
}
