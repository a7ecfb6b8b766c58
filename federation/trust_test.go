package federation

import (
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
)

// writePair writes cert's chain and key as PEM files in dir.
func writePair(t *testing.T, dir, name string, cert tls.Certificate) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	var certPEM []byte
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyPEM, err := KeyPEM(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// LoadTrust reads the site's pair and every peer's CA or pin; a peer
// whose allow is left out may do all, allow = [] nothing; a certificate
// of another site is refused.
func TestLoadTrust(t *testing.T) {
	now := time.Now()
	ca := newFedCA(t, "fed", now)
	dir := t.TempDir()
	aCert, _ := ca.issue(t, "a", now, time.Hour)
	_, bLeaf := ca.issue(t, "b", now, time.Hour)
	certPath, keyPath := writePair(t, dir, "a", aCert)
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, ca.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	f := conf.Federation{Cert: certPath, Key: keyPath, CA: caPath, Peer: []conf.FederationPeer{
		{Name: "b", Fingerprint: "SHA256:" + strings.ToUpper(Fingerprint(bLeaf))},
		{Name: "c"},
		{Name: "d", Allow: []string{}},
		{Name: "e", Allow: []string{api.AllowDiscover}},
	}}
	tr, err := LoadTrust("a", f)
	if err != nil {
		t.Fatalf("LoadTrust = %v", err)
	}
	if p, _ := tr.Peer("b"); p.Roots != nil || p.Fingerprint != Fingerprint(bLeaf) {
		t.Errorf("pinned peer b = %+v; want its fingerprint alone, normalized", p)
	}
	if p, _ := tr.Peer("c"); p.Roots == nil || p.Fingerprint != "" {
		t.Errorf("peer c = %+v; want federation.ca", p)
	}
	for _, tc := range []struct {
		peer, what string
		want       bool
	}{
		{"c", api.AllowRun, true}, {"c", api.AllowDiscover, true},
		{"d", api.AllowRun, false}, {"d", api.AllowDiscover, false},
		{"e", api.AllowRun, false}, {"e", api.AllowDiscover, true},
		{"z", api.AllowRun, false},
	} {
		if got := tr.Allowed(tc.peer, tc.what); got != tc.want {
			t.Errorf("Allowed(%s, %s) = %v, want %v", tc.peer, tc.what, got, tc.want)
		}
	}
	if _, err := LoadTrust("b", f); err == nil || !strings.Contains(err.Error(), `does not name site "b"`) {
		t.Errorf("LoadTrust for another site = %v; want it refused", err)
	}
	f.CA = ""
	if _, err := LoadTrust("a", f); err == nil || !strings.Contains(err.Error(), "federation.peer[1] (c)") {
		t.Errorf("LoadTrust with a peer nothing identifies = %v", err)
	}
}

// ServerConfig and ClientConfig take the trust current gives at each
// handshake: a rotated certificate is served at once, and a peer dropped
// from the trust is refused.
func TestTrustRotation(t *testing.T) {
	now := time.Now()
	ca := newFedCA(t, "fed", now)
	a1, a1Leaf := ca.issue(t, "a", now, time.Hour)
	a2, a2Leaf := ca.issue(t, "a", now, time.Hour)
	b, _ := ca.issue(t, "b", now, time.Hour)
	var server, client atomic.Pointer[Trust]
	server.Store(&Trust{Site: "a", Cert: a1, Peers: []Peer{{Name: "b", Roots: ca.pool}}})
	client.Store(&Trust{Site: "b", Cert: b, Peers: []Peer{{Name: "a", Roots: ca.pool}}})
	var served []string
	ccfg := ClientConfig(client.Load, "a", time.Now)
	verify := ccfg.VerifyConnection
	ccfg.VerifyConnection = func(cs tls.ConnectionState) error {
		served = append(served, Fingerprint(cs.PeerCertificates[0]))
		return verify(cs)
	}
	scfg := ServerConfig(server.Load, time.Now)
	if cErr, sErr := handshake(t, ccfg, scfg); cErr != nil || sErr != nil {
		t.Fatalf("handshake = %v, %v", cErr, sErr)
	}
	server.Store(&Trust{Site: "a", Cert: a2, Peers: []Peer{{Name: "b", Roots: ca.pool}}})
	if cErr, sErr := handshake(t, ccfg, scfg); cErr != nil || sErr != nil {
		t.Fatalf("handshake after rotation = %v, %v", cErr, sErr)
	}
	if want := []string{Fingerprint(a1Leaf), Fingerprint(a2Leaf)}; !slices.Equal(served, want) {
		t.Errorf("served %v, want %v", served, want)
	}
	server.Store(&Trust{Site: "a", Cert: a2})
	if _, sErr := handshake(t, ccfg, scfg); sErr == nil || !strings.Contains(sErr.Error(), "not a peer") {
		t.Errorf("handshake after b was dropped: server %v; want b refused", sErr)
	}
}
