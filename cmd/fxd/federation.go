package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fxd.dev/fxd/federation"
	"fxd.dev/fxd/internal/atomicfile"
)

const federationUsage = `usage:
  fxd federation init --site NAME --dir DIR [--host H]... [--ca [--ca-days N] [--days N]]
      make this site's key (DIR/NAME.key) and certificate request (DIR/NAME.csr)
      for the hosts its peer endpoint listens on; with --ca, also a federation
      CA (DIR/federation-ca.pem, DIR/federation-ca.key, valid --ca-days) that
      signs the site's certificate (DIR/NAME.pem, valid --days): enough for a
      small federation
  fxd federation sign --ca-cert FILE --ca-key FILE [--days N] CSR
      sign a site's certificate request with the federation CA; the
      certificate goes to stdout, for the site's admin
  fxd federation show CERT
      the site a certificate names, its validity and its SHA-256
      fingerprint, which peers exchange and may pin

Peers know each other by certificate: each lists the others in
[[federation.peer]] with the CA that signs them or their fingerprint.

flags:
`

// cmdFederation is `fxd federation init|sign|show`.
func cmdFederation(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("fxd federation", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, federationUsage); fl.PrintDefaults() }
	site := fl.String("site", "", "with init: this site's `name` (its site.name)")
	dir := fl.String("dir", "", "with init: the `directory` for the files it makes (created 0700)")
	var hosts hostsFlag
	fl.Var(&hosts, "host", "with init: a `host` name or address the peer endpoint listens on; repeatable")
	withCA := fl.Bool("ca", false, "with init: also make a federation CA and sign the site's certificate")
	days := fl.Int("days", 365, "with init --ca and sign: how many `days` site certificates are valid")
	caDays := fl.Int("ca-days", 3650, "with init --ca: how many `days` the federation CA is valid (it must outlive the certificates it signs)")
	caCert := fl.String("ca-cert", "", "with sign: the federation CA's certificate `file`")
	caKey := fl.String("ca-key", "", "with sign: the federation CA's key `file`")
	pos, err := parseAnywhere(fl, args)
	if err != nil {
		return helpOK(err)
	}
	validity := time.Duration(*days) * 24 * time.Hour
	switch {
	case len(pos) == 1 && pos[0] == "init":
		caValidity := time.Duration(*caDays) * 24 * time.Hour
		if *withCA && caValidity < validity {
			return fmt.Errorf("--ca-days %d is shorter than --days %d: the CA must outlive the certificates it signs", *caDays, *days)
		}
		return federationInit(stdout, *site, *dir, hosts, *withCA, validity, caValidity)
	case len(pos) == 2 && pos[0] == "sign":
		return federationSign(stdout, *caCert, *caKey, pos[1], validity)
	case len(pos) == 2 && pos[0] == "show":
		return federationShow(stdout, pos[1])
	}
	fl.Usage()
	return errors.New("want init, sign CSR or show CERT")
}

// hostsFlag collects --host flags.
type hostsFlag []string

func (h *hostsFlag) String() string     { return strings.Join(*h, ",") }
func (h *hostsFlag) Set(v string) error { *h = append(*h, v); return nil }

// federationInit makes a site's key and request, and with ca a CA that
// signs its certificate.
func federationInit(stdout io.Writer, site, dir string, hosts []string, ca bool, validity, caValidity time.Duration) error {
	if site == "" || dir == "" {
		return errors.New("give --site NAME (this site's site.name) and --dir DIR")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := federation.NewKey()
	if err != nil {
		return err
	}
	csr, err := federation.NewCSR(site, hosts, key)
	if err != nil {
		return err
	}
	keyPEM, err := federation.KeyPEM(key)
	if err != nil {
		return err
	}
	files := map[string][]byte{site + ".key": keyPEM, site + ".csr": csr}
	if ca {
		caPEM, caKey, err := federation.NewCA(site, time.Now(), caValidity)
		if err != nil {
			return err
		}
		caKeyPEM, err := federation.KeyPEM(caKey)
		if err != nil {
			return err
		}
		cert, err := federation.Sign(caPEM, caKey, csr, time.Now(), validity)
		if err != nil {
			return err
		}
		files["federation-ca.pem"], files["federation-ca.key"], files[site+".pem"] = caPEM, caKeyPEM, cert
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists; fxd federation init does not overwrite: move it away or give another --dir", p)
		}
		if err := atomicfile.Write(p, data, 0o600); err != nil {
			return err
		}
		fmt.Fprintln(stdout, p)
	}
	return nil
}

// federationSign signs the request at csrPath with the CA's files.
func federationSign(stdout io.Writer, caCertPath, caKeyPath, csrPath string, validity time.Duration) error {
	if caCertPath == "" || caKeyPath == "" {
		return errors.New("give --ca-cert FILE and --ca-key FILE, the federation CA's")
	}
	caPEM, err := os.ReadFile(caCertPath)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(caKeyPath)
	if err != nil {
		return err
	}
	caKey, err := federation.ParseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", caKeyPath, err)
	}
	csr, err := os.ReadFile(csrPath)
	if err != nil {
		return err
	}
	cert, err := federation.Sign(caPEM, caKey, csr, time.Now(), validity)
	if err != nil {
		return fmt.Errorf("%s: %w", csrPath, err)
	}
	_, err = stdout.Write(cert)
	return err
}

// federationShow describes the certificate at path.
func federationShow(stdout io.Writer, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c, err := federation.ParseCert(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	site, err := federation.SiteOf(c)
	if err != nil {
		site = "(none: " + err.Error() + ")"
	}
	_, err = fmt.Fprintf(stdout, "site:        %s\nissuer:      %s\nvalid:       %s to %s\nhosts:       %s\nfingerprint: %s\n",
		site, c.Issuer.CommonName, c.NotBefore.UTC().Format(time.DateTime), c.NotAfter.UTC().Format(time.DateTime),
		strings.Join(append(c.DNSNames, ipStrings(c)...), ", "), federation.Fingerprint(c))
	return err
}

// ipStrings lists c's IP address SANs.
func ipStrings(c *x509.Certificate) []string {
	out := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		out[i] = ip.String()
	}
	return out
}
