package conf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// siteCert makes a self-signed ECDSA P-256 certificate with the common name
// cn and the URI SANs uris, and writes it and its key to dir/name.pem and
// dir/name.key. It returns the two paths and the certificate's DER.
func siteCert(t *testing.T, dir, name, cn string, uris ...string) (cert, key string, der []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true, // so it can stand as its own CA bundle
	}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writeFile(t, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return cert, key, der
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The certificate in federation.cert must name site.name: by its
// fxd-site URI SAN, or failing that its CommonName.
func TestValidateFederationCert(t *testing.T) {
	dir := t.TempDir()
	uriCert, uriKey, _ := siteCert(t, dir, "uri", "a", "fxd-site:a")
	cnCert, cnKey, _ := siteCert(t, dir, "cn", "a")
	otherCert, otherKey, _ := siteCert(t, dir, "other", "b", "fxd-site:b")
	uriWins, uriWinsKey, _ := siteCert(t, dir, "uriwins", "a", "https://a.example.org", "fxd-site:b")
	noneCert, noneKey, _ := siteCert(t, dir, "none", "")
	notPEM := filepath.Join(dir, "junk.pem")
	writeFile(t, notPEM, []byte("not a certificate\n"))
	const peer = "[[federation.peer]]\nname = \"b\"\nfingerprint = \"sha256:" +
		"3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d\"\n"
	pair := func(cert, key string) string {
		return fmt.Sprintf("listen = \":9444\"\ncert = %q\nkey = %q\n", cert, key)
	}
	tests := []struct {
		name       string
		federation string
		want       []string // prefixes of the problems, in order; none: valid
	}{
		{"uri san names the site", pair(uriCert, uriKey), nil},
		{"common name only", pair(cnCert, cnKey),
			[]string{"x.toml:5: federation.cert: the certificate names no site (no fxd-site: URI SAN that agrees with its CommonName)"}},
		{"another site", pair(otherCert, otherKey),
			[]string{`x.toml:5: federation.cert: the certificate names site "b", not site.name "a"; make one with fxd federation init --site a`}},
		{"uri san and common name disagree", pair(uriWins, uriWinsKey),
			[]string{"x.toml:5: federation.cert: the certificate names no site (no fxd-site: URI SAN that agrees with its CommonName)"}},
		{"no name", pair(noneCert, noneKey),
			[]string{"x.toml:5: federation.cert: the certificate names no site (no fxd-site: URI SAN that agrees with its CommonName); make one with fxd federation init --site a"}},
		{"key of another cert", pair(uriCert, otherKey),
			[]string{"x.toml:6: federation.key: load key pair " + uriCert + " and " + otherKey}},
		{"cert is not pem", pair(notPEM, uriKey),
			[]string{"x.toml:6: federation.key: load key pair " + notPEM}},
		{"cert is missing", pair(filepath.Join(dir, "nope.pem"), uriKey),
			[]string{"x.toml:5: federation.cert: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory; give a file fxd can read"}},
		{"cert and key without listen or peers", fmt.Sprintf("cert = %q\nkey = %q\n", otherCert, otherKey),
			[]string{`x.toml:4: federation.cert: the certificate names site "b"`}},
		{"listen without cert", "listen = \":9444\"\n",
			[]string{"x.toml:3: federation.cert: cert and key are required with federation.listen; make this site's key with fxd federation init --site a"}},
		{"peer without cert", peer,
			[]string{"x.toml:3: federation.cert: cert and key are required with [[federation.peer]]"}},
		{"ca not pem", pair(uriCert, uriKey) + fmt.Sprintf("ca = %q\n", notPEM),
			[]string{"x.toml:7: federation.ca: " + notPEM + " holds no PEM certificate; give a bundle of the CA certificates that sign the peers' certificates"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "[site]\nname = \"a\"\n[federation]\n" + tt.federation
			c, err := Parse([]byte(text), "x.toml")
			if err != nil {
				t.Fatal(err)
			}
			wantProblems(t, c.Validate(), tt.want)
		})
	}
}

// The peer endpoint cannot share the HTTPS endpoint's port.
func TestValidateFederationListen(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := siteCert(t, dir, "a", "a", "fxd-site:a")
	endpointCert, endpointKey, _ := siteCert(t, dir, "endpoint", "localhost")
	tests := []struct {
		name, listen string
		want         []string
	}{
		{"own port", ":9444", nil},
		{"same address", ":8443", []string{`x.toml:8: federation.listen: ":8443" takes endpoint.listen's port (:8443); give the peer endpoint a port of its own, like ":9444"`}},
		{"any address", "0.0.0.0:8443", []string{`x.toml:8: federation.listen: "0.0.0.0:8443" takes endpoint.listen's port`}},
		{"one host", "10.0.0.5:8443", []string{`x.toml:8: federation.listen: "10.0.0.5:8443" takes endpoint.listen's port`}},
		{"not an address", "localhost", []string{`x.toml:8: federation.listen: "localhost" is not an address; write "host:port" or ":port", like ":9444"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := fmt.Sprintf("[site]\nname = \"a\"\n[endpoint]\nlisten = \":8443\"\ntls_cert = %q\ntls_key = %q\n"+
				"[federation]\nlisten = %q\ncert = %q\nkey = %q\n", endpointCert, endpointKey, tt.listen, cert, key)
			c, err := Parse([]byte(text), "x.toml")
			if err != nil {
				t.Fatal(err)
			}
			wantProblems(t, c.Validate(), tt.want)
		})
	}
}

// A federation with two peers, one checked by its CA and one pinned by
// fingerprint, validates; their allow lists decode as written.
func TestValidateFederationPeers(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := siteCert(t, dir, "a", "a", "fxd-site:a")
	bCA, _, _ := siteCert(t, dir, "b-ca", "b federation CA")
	_, _, cDER := siteCert(t, dir, "c", "c", "fxd-site:c")
	sum := sha256.Sum256(cDER)
	text := fmt.Sprintf(`[site]
name = "a"

[federation]
listen = ":9444"
cert = %q
key = %q
retry_deadline = "2h"

[[federation.peer]]
name = "b"
url = "https://b.example.org:9444"
ca = %q

[[federation.peer]]
name = "c"
fingerprint = "SHA256:%s"
allow = ["discover"]
`, cert, key, bCA, strings.ToUpper(hex.EncodeToString(sum[:])))
	c, err := Parse([]byte(text), "fed.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	f := c.Federation
	if len(f.Peer) != 2 || f.Peer[0].Allow != nil || len(f.Peer[1].Allow) != 1 || f.RetryDeadline.D() != 2*time.Hour || f.PollWait.D() != 20*time.Second {
		t.Errorf("federation = %+v, want 2 peers, b's allow left out (nil), c's [discover], retry_deadline 2h, the default poll_wait", f)
	}

	// allow = [] allows nothing, and stays apart from a left-out allow.
	c, err = Parse([]byte(strings.Replace(text, `allow = ["discover"]`, "allow = []", 1)), "fed.toml")
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Federation.Peer[1].Allow; a == nil || len(a) != 0 {
		t.Errorf("allow = [] decoded to %#v, want an empty, non-nil list", a)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(allow = []) = %v, want nil", err)
	}
}

func TestNormalFingerprint(t *testing.T) {
	const hexFP = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
	var pairs []string
	for i := 0; i < len(hexFP); i += 2 {
		pairs = append(pairs, strings.ToUpper(hexFP[i:i+2]))
	}
	colons := strings.Join(pairs, ":")
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"prefixed", "sha256:" + hexFP, true},
		{"bare, as fxd federation show prints it", hexFP, true},
		{"upper case", "SHA256:" + strings.ToUpper(hexFP), true},
		{"colons", colons, true},
		{"prefixed colons", "sha256:" + colons, true},
		{"empty", "", false},
		{"short", "sha256:" + hexFP[:62], false},
		{"long", "sha256:" + hexFP + "00", false},
		{"not hex", "sha256:" + strings.Repeat("g", 64), false},
		{"other hash", "sha1:" + hexFP, false},
		{"odd colons", "sha256:" + hexFP[:3] + ":" + hexFP[3:], false},
		{"colons missing a pair", strings.Join(pairs[:31], ":"), false},
		{"colons and a run", strings.Join(pairs[:30], ":") + ":" + pairs[30] + pairs[31], false},
		{"empty pair", colons + ":", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := normalFingerprint(tt.in)
			if ok != tt.ok || (ok && got != hexFP) {
				t.Errorf("normalFingerprint(%q) = %q, %v, want %q, %v", tt.in, got, ok, hexFP, tt.ok)
			}
		})
	}
}
