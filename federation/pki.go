package federation

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
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"fxd.dev/fxd/api"
)

// siteURIScheme is the scheme of the URI SAN that names a site.
const siteURIScheme = "fxd-site"

// siteNameRE is what conf takes as site.name.
var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// NewKey makes a site's (or a federation CA's) private key: ECDSA P-256.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make key: %w", err)
	}
	return k, nil
}

// KeyPEM encodes k as a PKCS#8 PEM block.
func KeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a PEM private key that KeyPEM wrote.
func ParseKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("no PEM private key in it: %w", api.ErrInvalid)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %v: %w", err, api.ErrInvalid)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA: %w", k, api.ErrInvalid)
	}
	return ek, nil
}

// NewCA makes a federation CA named name, valid from now for validity:
// its certificate (PEM) and key. A small federation shares one; larger
// ones have each site sign with its own institution's CA instead.
func NewCA(name string, now time.Time, validity time.Duration) (certPEM []byte, key *ecdsa.PrivateKey, err error) {
	if key, err = NewKey(); err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name + " fxd federation CA"},
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make CA certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key, nil
}

// NewCSR makes the certificate request of site for key: CommonName and
// the URI SAN name the site, hosts (DNS names or IP addresses) are where
// its peer endpoint listens.
func NewCSR(site string, hosts []string, key *ecdsa.PrivateKey) ([]byte, error) {
	if !siteNameRE.MatchString(site) {
		return nil, fmt.Errorf("site %q: use 1 to 63 lowercase letters, digits and \"-\", as site.name: %w", site, api.ErrInvalid)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: site}, URIs: []*url.URL{siteURI(site)}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("make certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Sign issues, with the CA's certificate and key, the certificate a site
// asked for in csrPEM: valid from now for validity, for both ends of a
// peer link (server and client authentication), naming the site and the
// hosts the request names. A request whose signature does not verify, or
// that names no site, is refused.
func Sign(caCertPEM []byte, caKey *ecdsa.PrivateKey, csrPEM []byte, now time.Time, validity time.Duration) ([]byte, error) {
	ca, err := ParseCert(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("no PEM certificate request in it (fxd federation init writes one): %w", api.ErrInvalid)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		return nil, fmt.Errorf("certificate request: %v: %w", err, api.ErrInvalid)
	}
	site := csr.Subject.CommonName
	if !siteNameRE.MatchString(site) {
		return nil, fmt.Errorf("certificate request names %q, not a site name: %w", site, api.ErrInvalid)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: site},
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{siteURI(site)}, DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign the certificate of %s: %w", site, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ParseCert reads the first PEM certificate of data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate in it: %w", api.ErrInvalid)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %v: %w", err, api.ErrInvalid)
	}
	return c, nil
}

// SiteOf returns the site c names: its "fxd-site:" URI SAN, which must
// agree with its CommonName.
func SiteOf(c *x509.Certificate) (string, error) {
	for _, u := range c.URIs {
		if u.Scheme == siteURIScheme {
			if u.Opaque != c.Subject.CommonName || !siteNameRE.MatchString(u.Opaque) {
				return "", fmt.Errorf("certificate names site %q but is issued to %q: %w", u.Opaque, c.Subject.CommonName, api.ErrDenied)
			}
			return u.Opaque, nil
		}
	}
	return "", fmt.Errorf("certificate of %q names no fxd site (no %s: URI); issue it with fxd federation sign: %w", c.Subject.CommonName, siteURIScheme, api.ErrDenied)
}

// Fingerprint is the SHA-256 of a certificate's DER, as peers exchange
// and pin it: 64 lowercase hex digits.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// siteURI is the URI SAN naming site.
func siteURI(site string) *url.URL { return &url.URL{Scheme: siteURIScheme, Opaque: site} }

// serial is a random certificate serial number (crypto/rand does not
// fail on Linux: it would end the program first).
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// NormalizeFingerprint is a fingerprint as people write it (a "sha256:"
// prefix, colons, upper case) in Fingerprint's form.
func NormalizeFingerprint(f string) string {
	f = strings.ToLower(f)
	f = strings.TrimPrefix(f, "sha256:")
	return strings.ReplaceAll(f, ":", "")
}
