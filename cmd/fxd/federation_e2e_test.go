package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/federation"
)

// The admin tooling makes what a federation of two sites needs: site a
// makes a federation CA and its own certificate, site b a request that
// a's CA signs; show gives each site's name and fingerprint; the files
// carry a mutual TLS 1.3 peer link between them.
func TestFederationTooling(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs the fxd binary")
	}
	dir := t.TempDir()
	adir, bdir := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if out, stderr, code := fxdRun(t, "federation", "init", "--site", "a", "--dir", adir, "--host", "127.0.0.1", "--ca"); code != 0 {
		t.Fatalf("init a --ca: exit %d: %s %s", code, out, stderr)
	}
	if out, stderr, code := fxdRun(t, "federation", "init", "--site", "b", "--dir", bdir, "--host", "127.0.0.1"); code != 0 {
		t.Fatalf("init b: exit %d: %s %s", code, out, stderr)
	}
	if _, stderr, code := fxdRun(t, "federation", "init", "--site", "b", "--dir", bdir); code == 0 || !strings.Contains(stderr, "does not overwrite") {
		t.Errorf("init b again: exit %d, %q; want a refusal to overwrite", code, stderr)
	}
	cert, stderr, code := fxdRun(t, "federation", "sign", "--ca-cert", filepath.Join(adir, "federation-ca.pem"),
		"--ca-key", filepath.Join(adir, "federation-ca.key"), filepath.Join(bdir, "b.csr"))
	if code != 0 {
		t.Fatalf("sign b: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(bdir, "b.pem"), []byte(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	// The CA outlives the certificates it signs: ten years by default.
	if out, _, code := fxdRun(t, "federation", "show", filepath.Join(adir, "federation-ca.pem")); code != 0 ||
		!strings.Contains(out, " to "+time.Now().AddDate(0, 0, 3650).UTC().Format("2006-01-02")) {
		t.Errorf("show the CA: exit %d, %q; want it valid for 3650 days", code, out)
	}
	if _, stderr, code := fxdRun(t, "federation", "init", "--site", "c", "--dir", filepath.Join(dir, "c"), "--ca", "--days", "400", "--ca-days", "300"); code == 0 || !strings.Contains(stderr, "must outlive") {
		t.Errorf("init with a CA shorter-lived than its certificate: exit %d, %q; want it refused", code, stderr)
	}
	for _, s := range []string{"a", "b"} {
		out, stderr, code := fxdRun(t, "federation", "show", filepath.Join(dir, s, s+".pem"))
		if code != 0 || !strings.Contains(out, "site:        "+s+"\n") || !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "fingerprint: ") {
			t.Errorf("show %s: exit %d, %q %q", s, code, out, stderr)
		}
	}

	load := func(s string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, s, s+".pem"), filepath.Join(dir, s, s+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(adir, "federation-ca.pem"))
	roots.AppendCertsFromPEM(caPEM)
	now := time.Now
	ln, err := tls.Listen("tcp", "127.0.0.1:0", federation.ServerTLS(load("b"), []federation.Peer{{Name: "a", Roots: roots}}, now))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hello from b\n"))
			c.Close()
		}
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
		federation.ClientTLS(load("a"), federation.Peer{Name: "b", Roots: roots}, now))
	if err != nil {
		t.Fatalf("a dials b: %v", err)
	}
	defer conn.Close()
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "hello from b\n" || conn.ConnectionState().Version != tls.VersionTLS13 {
		t.Errorf("a reads %q, %v over TLS %x; want b's hello over TLS 1.3", buf[:n], err, conn.ConnectionState().Version)
	}
}
