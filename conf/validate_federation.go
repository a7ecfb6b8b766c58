package conf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// siteAny is the site a task names to let its site route it
	// (api.SiteAny; conf imports no fxd package), so no site is named so.
	siteAny = "any"
	// siteURIScheme is the scheme of the URI SAN ("fxd-site:alcf") that
	// names a site in its federation certificate, as package federation
	// writes it.
	siteURIScheme = "fxd-site"
	minPollWait   = Duration(time.Second)
	maxPollWait   = Duration(5 * time.Minute)
)

// peerPermissions are what a [[federation.peer]] allow may list
// (api.AllowRun, api.AllowDiscover).
var peerPermissions = []string{"run", "discover"}

func (c *Config) validateFederation(ps *problems) {
	f := c.Federation
	if f.Listen != "" {
		switch {
		case !validAddr(f.Listen):
			ps.add("federation.listen", "%q is not an address; write \"host:port\" or \":port\", like \":9444\"", f.Listen)
		case c.Endpoint.Listen != "" && sameListener(f.Listen, c.Endpoint.Listen):
			ps.add("federation.listen", "%q takes endpoint.listen's port (%s); give the peer endpoint a port of its own, like \":9444\"", f.Listen, c.Endpoint.Listen)
		}
	}
	if c.Site.Name == siteAny && (f.Listen != "" || len(f.Peer) > 0) {
		ps.add("site.name", "\"any\" is reserved in a federation: a task names site \"any\" to let its site route it; choose another name")
	}
	c.validateFederationCert(ps)
	if f.CA != "" {
		readCABundle(ps, "federation.ca", f.CA, "the peers' certificates")
	}
	if f.RetryDeadline < Duration(time.Second) {
		ps.add("federation.retry_deadline", "%s is too short; give at least \"1s\", like \"1h\" (a peer that restarts must not fail the tasks forwarded to it)", f.RetryDeadline.D())
	}
	if f.PollWait < minPollWait || f.PollWait > maxPollWait {
		ps.add("federation.poll_wait", "%s is out of range; give \"1s\" to \"5m\", like \"20s\"", f.PollWait.D())
	}
	if f.OfferInterval < Duration(time.Second) {
		ps.add("federation.offer_interval", "%s is too short; give at least \"1s\", like \"30s\" (every ask costs each peer a request)", f.OfferInterval.D())
	}
	seen := map[string]bool{}
	for i, p := range f.Peer {
		key := fmt.Sprintf("federation.peer[%d]", i)
		c.validatePeerName(ps, key+".name", p.Name, seen)
		seen[p.Name] = true
		if p.URL != "" {
			validatePeerURL(ps, key+".url", p.URL)
		}
		validatePeerTrust(ps, key, p, f.CA != "")
		validatePeerAllow(ps, key, p.Allow)
	}
}

// sameListener reports whether two valid listen addresses take the same
// port on a common address.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return pa == pb && pa != "0" && (ha == hb || wild(ha) || wild(hb))
}

// validateFederationCert checks this site's federation certificate and
// key: both or neither, required when the site links with peers, a key
// pair, and naming site.name.
func (c *Config) validateFederationCert(ps *problems) {
	f := c.Federation
	switch {
	case f.Cert == "" && f.Key == "":
		need := "federation.listen"
		if f.Listen == "" {
			if len(f.Peer) == 0 {
				return
			}
			need = "[[federation.peer]]"
		}
		ps.add("federation.cert", "cert and key are required with %s; make this site's key with fxd federation init --site %s, have the federation CA sign its request (fxd federation sign), and set cert and key to the two PEM files",
			need, siteOr(c.Site.Name))
		return
	case f.Key == "":
		ps.add("federation.cert", "set without federation.key; set key to the certificate's PEM private key (fxd federation init wrote it as NAME.key), or remove cert")
		return
	case f.Cert == "":
		ps.add("federation.key", "set without federation.cert; set cert to this site's PEM certificate, signed with fxd federation sign, or remove key")
		return
	}
	cert, certOK := readPEM(ps, "federation.cert", f.Cert, "")
	key, keyOK := readPEM(ps, "federation.key", f.Key, "")
	if !certOK || !keyOK {
		return
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		ps.add("federation.key", "load key pair %s and %s: %v; give this site's PEM certificate and the private key that belongs to it", f.Cert, f.Key, err)
		return
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			ps.add("federation.cert", "parse %s: %v; give this site's PEM certificate", f.Cert, err)
			return
		}
	}
	if !siteNameRE.MatchString(c.Site.Name) {
		return // reported at site.name
	}
	switch named := certSite(leaf); named {
	case c.Site.Name:
	case "":
		ps.add("federation.cert", "the certificate names no site (no %s: URI SAN that agrees with its CommonName); make one with fxd federation init --site %s", siteURIScheme, c.Site.Name)
	default:
		ps.add("federation.cert", "the certificate names site %q, not site.name %q; make one with fxd federation init --site %s", named, c.Site.Name, c.Site.Name)
	}
}

// certSite returns the site a federation certificate names, as
// federation.SiteOf reads it: its "fxd-site:" URI SAN, which must agree
// with its CommonName; "" when it names none, or two.
func certSite(c *x509.Certificate) string {
	for _, u := range c.URIs {
		if u.Scheme == siteURIScheme {
			if u.Opaque != c.Subject.CommonName {
				return ""
			}
			return u.Opaque
		}
	}
	return ""
}

// siteOr returns name when it can name a site, else "NAME", for commands
// in messages.
func siteOr(name string) string {
	if siteNameRE.MatchString(name) && name != siteAny {
		return name
	}
	return "NAME"
}

// validatePeerName checks a peer's name: a site name, not this site's or
// "any", and not in seen (the names of the peers before it).
func (c *Config) validatePeerName(ps *problems, key, name string, seen map[string]bool) {
	switch {
	case name == "":
		ps.add(key, "empty; give the peer's site.name, as its certificate names it (fxd federation show CERT prints it)")
	case !siteNameRE.MatchString(name):
		ps.add(key, "%q is not a site name; give the peer's site.name, as its certificate names it: 1 to 63 lowercase letters, digits and \"-\"", name)
	case name == siteAny:
		ps.add(key, "\"any\" is reserved: a task names site \"any\" to let this site route it; the peer needs another site.name")
	case name == c.Site.Name:
		ps.add(key, "%q is this site's own name (site.name); give the peer's site.name", name)
	case seen[name]:
		ps.add(key, "%q names two peers; list each peer once", name)
	}
}

// validatePeerURL checks a peer's endpoint URL: "https://host:port" and
// nothing more.
func validatePeerURL(ps *problems, key, s string) {
	const want = "give the peer's endpoint as \"https://host:port\", like \"https://b.example.org:9444\""
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || u.Hostname() == "":
		ps.add(key, "%q is not a URL; %s", s, want)
	case u.Scheme != "https":
		ps.add(key, "%q is not https; peers talk over mutual TLS only: %s", s, want)
	case u.User != nil:
		ps.add(key, "%q holds a user; peers know each other by certificate only: %s", s, want)
	case u.Port() == "":
		ps.add(key, "%q has no port; give the port of the peer's federation.listen, like %q", s, "https://"+u.Host+":9444")
	case !validPort(u.Port()) || strings.Trim(u.Port(), "0") == "":
		ps.add(key, "%q: port %s is out of range; give 1 to 65535", s, u.Port())
	case u.Path != "" || u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "#"):
		ps.add(key, "%q has more than a host and port; write %q", s, "https://"+u.Host)
	}
}

// validatePeerTrust checks what identifies a peer's certificate: its ca or
// fingerprint, else federation.ca (fedCA).
func validatePeerTrust(ps *problems, key string, p FederationPeer, fedCA bool) {
	if p.CA == "" && p.Fingerprint == "" && !fedCA {
		ps.add(key, "neither ca nor fingerprint is set, nor federation.ca, so the peer's certificate cannot be checked; set ca (the PEM bundle of the CA that signs it) or fingerprint (fxd federation show CERT prints it), or set federation.ca")
	}
	if p.CA != "" {
		readCABundle(ps, key+".ca", p.CA, "the peer's certificate")
	}
	if p.Fingerprint != "" {
		if _, ok := normalFingerprint(p.Fingerprint); !ok {
			ps.add(key+".fingerprint", "%q is not a SHA-256 fingerprint; give the one fxd federation show prints for the peer's certificate: 64 hex digits, optionally after \"sha256:\" and with colons between byte pairs", p.Fingerprint)
		}
	}
}

// validatePeerAllow checks a peer's permissions: known, each once.
func validatePeerAllow(ps *problems, key string, allow []string) {
	seen := map[string]bool{}
	for j, a := range allow {
		akey := key + ".allow[" + strconv.Itoa(j) + "]"
		switch {
		case !slices.Contains(peerPermissions, a):
			ps.add(akey, "%q is not a permission; use \"run\" (forward tasks here) or \"discover\" (read this site's offers)", a)
		case seen[a]:
			ps.add(akey, "%q is listed twice; list it once", a)
		}
		seen[a] = true
	}
}

// normalFingerprint returns a SHA-256 fingerprint as people write it
// (with or without "sha256:", with or without colons between byte pairs,
// any case) as 64 lowercase hex digits, and whether it is one. It is the
// form federation.Fingerprint gives (conf imports no fxd package).
func normalFingerprint(s string) (string, bool) {
	h := s
	if len(h) >= len("sha256:") && strings.EqualFold(h[:len("sha256:")], "sha256:") {
		h = h[len("sha256:"):]
	}
	if strings.Contains(h, ":") {
		pairs := strings.Split(h, ":")
		if len(pairs) != sha256.Size || slices.ContainsFunc(pairs, func(p string) bool { return len(p) != 2 }) {
			return "", false
		}
		h = strings.Join(pairs, "")
	}
	if len(h) != 2*sha256.Size {
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	return strings.ToLower(h), true
}
