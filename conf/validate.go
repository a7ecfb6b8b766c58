package conf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	maxBatchLimit = 1_000_000
	minMemory     = 4 << 20
	minPids       = 8
	maxSocketPath = 107 // sun_path holds 108 bytes with the terminating NUL
	maxPEMBytes   = 1 << 20
)

var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks the whole config and returns every problem it finds,
// joined, each a *Problem that satisfies errors.Is(err, ErrInvalid) and names
// the file and line when the config came from Load or Parse. It reads the
// TLS files named by the endpoint and by federation to check they load.
func (c *Config) Validate() error {
	ps := &problems{src: c.src}
	c.validateSite(ps)
	c.validateEndpoint(ps)
	c.validateAuth(ps)
	c.validateLimits(ps)
	c.validateTenants(ps)
	c.validateWorkers(ps)
	c.validateContainers(ps)
	c.validateCache(ps)
	c.validateBatch(ps)
	c.validateFederation(ps)
	c.validateLog(ps)
	return ps.err()
}

// ValidateNode checks what a node agent (fxd node) uses of the config:
// [site], [auth], [workers], [containers], [cache] and [log]. The
// endpoint's and the federation's key files, which a compute node need
// not hold, and the daemon's own sections are not read.
func (c *Config) ValidateNode() error {
	ps := &problems{src: c.src}
	c.validateSite(ps)
	c.validateAuth(ps)
	c.validateWorkers(ps)
	c.validateContainers(ps)
	c.validateCache(ps)
	c.validateLog(ps)
	return ps.err()
}

// File is the absolute path the config was loaded from (Load), "" for
// one built in code (Default, Dev) or parsed from bytes.
func (c *Config) File() string {
	if c.src == nil {
		return ""
	}
	return c.src.path
}

// TokenFile returns the path of the token file: auth.token_file, or
// <state_dir>/tokens when that is empty.
func (c *Config) TokenFile() string {
	if c.Auth.TokenFile != "" {
		return c.Auth.TokenFile
	}
	return filepath.Join(c.Site.StateDir, "tokens")
}

func (c *Config) validateSite(ps *problems) {
	if !siteNameRE.MatchString(c.Site.Name) {
		ps.add("site.name", "%q is not a site name; use 1 to 63 lowercase letters, digits and \"-\", starting with a letter or digit, like \"alcf\"", c.Site.Name)
	}
	absPath(ps, "site.state_dir", c.Site.StateDir, true, "the directory for the task store and tokens, like \"/var/lib/fxd\"")
}

func (c *Config) validateEndpoint(ps *problems) {
	e := c.Endpoint
	if e.Listen == "" && e.Socket == "" {
		ps.add("endpoint", "neither listen nor socket is set, so fxd would serve nothing; set endpoint.socket (like \"/run/fxd/fxd.sock\") or endpoint.listen")
	}
	if e.Listen != "" {
		if !validAddr(e.Listen) {
			ps.add("endpoint.listen", "%q is not an address; write \"host:port\" or \":port\", like \":8443\" or \"10.0.0.5:8443\"", e.Listen)
		}
		c.validateTLS(ps)
	} else {
		for _, f := range []struct{ key, val string }{
			{"endpoint.tls_cert", e.TLSCert}, {"endpoint.tls_key", e.TLSKey}, {"endpoint.client_ca", e.ClientCA},
		} {
			if f.val != "" {
				ps.add(f.key, "set but endpoint.listen is empty, so HTTPS is off; set endpoint.listen (like \":8443\") or remove %s", f.key)
			}
		}
	}
	if e.Socket != "" {
		if absPath(ps, "endpoint.socket", e.Socket, false, "") && len(e.Socket) > maxSocketPath {
			ps.add("endpoint.socket", "path is %d bytes long, more than a unix socket allows (%d); choose a shorter path", len(e.Socket), maxSocketPath)
		}
	}
	if e.SocketMode > 0o777 {
		ps.add("endpoint.socket_mode", "%04o is not a file mode; use permission bits only, like \"0666\"", uint32(e.SocketMode))
	}
	if e.DrainGrace <= 0 {
		ps.add("endpoint.drain_grace", "must be more than 0; give a duration like \"30s\"")
	}
}

// validAddr reports whether s is a listen address: "host:port" or ":port".
func validAddr(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && validPort(port) && !strings.ContainsAny(host, " /")
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

// validateTLS checks the certificate, key and client CA of an HTTPS
// endpoint: set, absolute, readable, and loadable.
func (c *Config) validateTLS(ps *problems) {
	e := c.Endpoint
	cert, certOK := readPEM(ps, "endpoint.tls_cert", e.TLSCert, "the PEM certificate path")
	key, keyOK := readPEM(ps, "endpoint.tls_key", e.TLSKey, "the PEM private key path")
	if certOK && keyOK {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			ps.add("endpoint.tls_key", "load key pair %s and %s: %v; give the PEM certificate and the private key that belongs to it", e.TLSCert, e.TLSKey, err)
		}
	}
	if e.ClientCA != "" {
		readCABundle(ps, "endpoint.client_ca", e.ClientCA, "client certificates")
	}
}

// readCABundle checks that path, named by key, is a PEM file of at least
// one certificate: the CAs that sign what signs says.
func readCABundle(ps *problems, key, path, signs string) {
	if ca, ok := readPEM(ps, key, path, ""); ok && !x509.NewCertPool().AppendCertsFromPEM(ca) {
		ps.add(key, "%s holds no PEM certificate; give a bundle of the CA certificates that sign %s", path, signs)
	}
}

// readPEM reads a small regular file named by key; what says what to give
// when the key is required (empty: optional).
func readPEM(ps *problems, key, path, what string) ([]byte, bool) {
	if path == "" {
		if what != "" {
			ps.add(key, "required when endpoint.listen is set; give %s", what)
		}
		return nil, false
	}
	if !absPath(ps, key, path, false, "") {
		return nil, false
	}
	f, err := os.Open(path)
	if err != nil {
		ps.add(key, "%v; give a file fxd can read", err)
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		ps.add(key, "%s is not a regular file; give a PEM file", path)
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	if err != nil {
		ps.add(key, "read %s: %v", path, err)
		return nil, false
	}
	if len(data) > maxPEMBytes {
		ps.add(key, "%s is larger than %d bytes; give a PEM file", path, maxPEMBytes)
		return nil, false
	}
	return data, true
}

// absPath checks that path is absolute and clean; required says whether
// "" is a problem too, and what to give then.
func absPath(ps *problems, key, path string, required bool, what string) bool {
	switch {
	case path == "":
		if required {
			ps.add(key, "required; give %s", what)
		}
		return false
	case !filepath.IsAbs(path):
		ps.add(key, "%q is a relative path; give an absolute path (fxd runs from /)", path)
		return false
	case strings.ContainsRune(path, 0):
		ps.add(key, "path contains a NUL byte")
		return false
	}
	return true
}

func (c *Config) validateAuth(ps *problems) {
	a := c.Auth
	if a.TokenFile != "" {
		absPath(ps, "auth.token_file", a.TokenFile, false, "")
	}
	if a.CertIdentity != "common_name" && a.CertIdentity != "subject" {
		ps.add("auth.cert_identity", "%q is not known; use \"common_name\" or \"subject\"", a.CertIdentity)
	}
	if a.MinUID < 1 {
		ps.add("auth.min_uid", "must be at least 1, as root (UID 0) never runs tasks; the usual value is 1000")
	}
	for i, r := range a.Map {
		validateRule(ps, fmt.Sprintf("auth.map[%d]", i), r, a.MinUID)
	}
}

// validateRule checks one [[auth.map]] rule.
func validateRule(ps *problems, key string, r MapRule, minUID uint32) {
	var re *regexp.Regexp
	switch {
	case r.Match == "" && r.Regex == "":
		ps.add(key, "rule has neither match nor regex; set one of them")
	case r.Match != "" && r.Regex != "":
		ps.add(key, "rule has both match and regex; keep one of them")
	case r.Regex != "":
		var err error
		if re, err = r.CompileRegex(); err != nil {
			ps.add(key+".regex", "%q does not compile: %v; write a Go regular expression (https://pkg.go.dev/regexp/syntax), in single quotes to keep backslashes", r.Regex, err)
		}
	}
	akey := key + ".account"
	switch {
	case r.Account == "":
		ps.add(akey, "empty; give the local user name (or UID) this rule maps to")
		return
	case r.Account == "root" || isAllZero(r.Account):
		ps.add(akey, "%q is root, and tasks never run as root; map the identity to an unprivileged user", r.Account)
		return
	}
	refs := templateRefs(r.Account)
	if r.Match != "" && r.Regex == "" && len(refs) > 0 {
		ps.add(akey, "%q uses $ groups, which only a regex rule has; write the account name, or use regex", r.Account)
		return
	}
	if re != nil {
		for _, ref := range refs {
			if n, err := strconv.Atoi(ref); err == nil {
				if n > re.NumSubexp() {
					ps.add(akey, "$%s refers to group %d, but regex has %d groups; add the group or fix the number", ref, n, re.NumSubexp())
				}
			} else if re.SubexpIndex(ref) < 0 {
				ps.add(akey, "$%s names no group of regex; write ${1} or ${name} when letters follow the group", ref)
			}
		}
	}
	if len(refs) == 0 && isDigits(r.Account) {
		if uid, err := strconv.ParseUint(r.Account, 10, 32); err != nil || uid < uint64(minUID) {
			ps.add(akey, "UID %s is below auth.min_uid (%d); map the identity to a regular user's UID", r.Account, minUID)
		}
	}
}

// templateRefs returns the group references of a regexp.Expand template
// ("$1", "${name}", "$name"), without the "$" and braces.
func templateRefs(t string) []string {
	var refs []string
	for i := 0; i < len(t); i++ {
		if t[i] != '$' || i+1 >= len(t) {
			continue
		}
		if t[i+1] == '$' {
			i++
			continue
		}
		if t[i+1] == '{' {
			if end := strings.IndexByte(t[i:], '}'); end > 0 {
				refs = append(refs, t[i+2:i+end])
				i += end
			}
			continue
		}
		j := i + 1
		for j < len(t) && (t[j] == '_' || t[j] >= '0' && t[j] <= '9' || t[j] >= 'a' && t[j] <= 'z' || t[j] >= 'A' && t[j] <= 'Z') {
			j++
		}
		if j > i+1 {
			refs = append(refs, t[i+1:j])
			i = j - 1
		}
	}
	return refs
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func isAllZero(s string) bool { return s != "" && strings.Trim(s, "0") == "" }

// maxLinkedResult bounds any output: a node returns it in one link frame
// (256 MiB of JSON, base64 inside).
const maxLinkedResult = Size(160 << 20)

func (c *Config) validateLimits(ps *problems) {
	l := c.Limits
	for _, s := range []struct {
		key string
		v   Size
	}{
		{"limits.max_input_bytes", l.MaxInputBytes},
		{"limits.max_result_bytes", l.MaxResultBytes},
		{"limits.max_request_bytes", l.MaxRequestBytes},
	} {
		if s.v <= 0 {
			ps.add(s.key, "must be more than 0; give a size like \"10MiB\"")
		}
	}
	if l.MaxInputBytes > l.MaxRequestBytes && l.MaxRequestBytes > 0 {
		ps.add("limits.max_input_bytes", "%s is more than limits.max_request_bytes (%s), so such an input could never arrive; raise max_request_bytes or lower max_input_bytes", sizeText(l.MaxInputBytes), sizeText(l.MaxRequestBytes))
	}
	switch {
	case l.MaxCachedResultBytes < 0:
		ps.add("limits.max_cached_result_bytes", "must be 0 (keep no larger output) or more; give a size like \"64MiB\"")
	case l.MaxCachedResultBytes > maxLinkedResult:
		ps.add("limits.max_cached_result_bytes", "%s is more than a node's link carries in one result (%s); give at most that, and have larger results written to shared storage",
			sizeText(l.MaxCachedResultBytes), sizeText(maxLinkedResult))
	}
	if l.MaxBatch < 1 || l.MaxBatch > maxBatchLimit {
		ps.add("limits.max_batch", "%d is out of range; give 1 to %d", l.MaxBatch, maxBatchLimit)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"limits.result_retention", l.ResultRetention},
		{"limits.default_timeout", l.DefaultTimeout},
		{"limits.max_timeout", l.MaxTimeout},
		{"limits.max_wait", l.MaxWait},
	} {
		if d.v <= 0 {
			ps.add(d.key, "must be more than 0; give a duration like \"30s\" or \"1h\"")
		}
	}
	if l.DefaultTimeout > l.MaxTimeout && l.MaxTimeout > 0 {
		ps.add("limits.default_timeout", "%s is more than limits.max_timeout (%s); raise max_timeout or lower default_timeout", l.DefaultTimeout.D(), l.MaxTimeout.D())
	}
}

func sizeText(s Size) string {
	b, _ := s.MarshalText()
	return string(b)
}

func (c *Config) validateTenants(ps *problems) {
	validateQuota(ps, "tenants.default", c.Tenants.Default, true)
	names := make([]string, 0, len(c.Tenants.Account))
	for name := range c.Tenants.Account {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := joinKey("tenants.account", []string{name})
		if name == "" || name == "root" || isAllZero(name) {
			ps.add(key, "%q is not an account fxd runs tasks as; remove this section", name)
		}
		validateQuota(ps, key, c.Tenants.Account[name], false)
	}
}

// validateQuota checks a quota: all fields set for the default, and set
// fields (non-zero) for an account override.
func validateQuota(ps *problems, key string, q Quota, isDefault bool) {
	want := "more than 0"
	if !isDefault {
		want = "0 (to keep the default) or more"
	}
	ints := []struct {
		name string
		v    int64
		min  int64
	}{
		{"max_running", int64(q.MaxRunning), 1},
		{"max_queued", int64(q.MaxQueued), 1},
		{"max_workers", int64(q.MaxWorkers), 1},
		{"pids", q.Pids, minPids},
	}
	for _, f := range ints {
		switch {
		case f.v < 0 || (isDefault && f.v == 0):
			ps.add(key+"."+f.name, "%d is out of range; give %s", f.v, want)
		case f.v > 0 && f.v < f.min:
			ps.add(key+"."+f.name, "%d is too few; give at least %d", f.v, f.min)
		}
	}
	switch {
	case q.Memory < 0 || (isDefault && q.Memory == 0):
		ps.add(key+".memory", "must be %s; give a size like \"2GiB\"", want)
	case q.Memory > 0 && q.Memory < minMemory:
		ps.add(key+".memory", "%s is too little for any worker; give at least 4MiB", sizeText(q.Memory))
	}
	if math.IsNaN(q.CPUs) || math.IsInf(q.CPUs, 0) || q.CPUs < 0 || (isDefault && q.CPUs == 0) {
		ps.add(key+".cpus", "%v is out of range; give %s, in cores, like 2.0", q.CPUs, want)
	}
	if q.CacheBytes < 0 || (isDefault && q.CacheBytes == 0) {
		ps.add(key+".cache_bytes", "must be %s; give a size like \"100GiB\"", want)
	}
}

func (c *Config) validateCache(ps *problems) {
	k := c.Cache
	if k.MaxSize < 0 {
		ps.add("cache.max_size", "must be 0 (no cap) or more; give a size like \"200GiB\"")
	}
	if k.MinFreeSpace < 0 {
		ps.add("cache.min_free_space", "must be 0 or more; give a size like \"5GiB\"")
	}
	if k.MaxEntrySize <= 0 {
		ps.add("cache.max_entry_size", "must be more than 0; give a size like \"50GiB\"")
	}
	if k.MaxSize > 0 && k.MaxEntrySize > k.MaxSize {
		ps.add("cache.max_entry_size", "%s is more than cache.max_size %s; no entry that large would fit", sizeText(k.MaxEntrySize), sizeText(k.MaxSize))
	}
	for i, p := range k.Paths {
		key := fmt.Sprintf("cache.paths[%d]", i)
		if absPath(ps, key, p, true, "a directory like \"/gpfs/datasets\"") {
			switch {
			case filepath.Clean(p) == "/":
				ps.add(key, "\"/\" would let users stage any file they can read, fxd's own state included; give the directories that hold datasets")
			case filepath.Clean(p) != p:
				ps.add(key, "%q is not clean; write it as %q", p, filepath.Clean(p))
			}
		}
	}
	for i, u := range k.URLs {
		key := fmt.Sprintf("cache.urls[%d]", i)
		p, err := url.Parse(u)
		switch {
		case err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil || p.RawQuery != "" || p.Fragment != "":
			ps.add(key, "%q is not an http(s) URL prefix; give one like \"https://data.example.org/\"", u)
		case !strings.HasSuffix(u, "/"):
			ps.add(key, "%q does not end in \"/\", so it would also allow %q; write %q", u, u+".attacker.example/", u+"/")
		}
	}
	if k.URLTimeout <= 0 {
		ps.add("cache.url_timeout", "must be more than 0; give a duration like \"30m\"")
	}
}

func (c *Config) validateWorkers(ps *problems) {
	w := c.Workers
	if w.IdleTimeout <= 0 {
		ps.add("workers.idle_timeout", "must be more than 0; give a duration like \"5m\"")
	}
	p := w.CgroupParent
	switch {
	case p == "":
		ps.add("workers.cgroup_parent", "empty; give a cgroup path relative to the hierarchy root, like \"fxd\"")
	case filepath.IsAbs(p):
		ps.add("workers.cgroup_parent", "%q is absolute; give a path relative to the hierarchy root, like \"fxd\"", p)
	case slices.Contains(strings.Split(p, "/"), ".."), strings.ContainsRune(p, 0):
		ps.add("workers.cgroup_parent", "%q leaves its hierarchy; give a path without \"..\", like \"fxd\"", p)
	}
	if w.Shim != "" {
		absPath(ps, "workers.shim", w.Shim, false, "")
	}
}

func (c *Config) validateContainers(ps *problems) {
	k := c.Containers
	if k.Runtime != "" && k.Runtime != "none" && strings.Contains(k.Runtime, "/") {
		absPath(ps, "containers.runtime", k.Runtime, false, "")
	}
	if !slices.Contains([]string{"host", "none"}, k.Network) {
		ps.add("containers.network", "%q is not a network mode; use \"host\" or \"none\"", k.Network)
	}
	if absPath(ps, "containers.work_dir", k.WorkDir, true, "a directory like \"/tmp/work\"") && k.WorkDir == "/" {
		ps.add("containers.work_dir", "\"/\" is the image root, which is read-only; give a directory like \"/tmp/work\"")
	}
	if k.TmpSize < minMemory {
		ps.add("containers.tmp_size", "%s is too small; give at least 4MiB", sizeText(k.TmpSize))
	}
	if k.MaxImageSize <= 0 {
		ps.add("containers.max_image_size", "must be more than 0; give a size like \"16GiB\"")
	}
	if k.MaxUserImages < 0 {
		ps.add("containers.max_user_images", "must be 0 (no bound) or more; give a count like 10")
	}
	if k.MaxUserImageBytes < 0 {
		ps.add("containers.max_user_image_bytes", "must be 0 (no bound) or more; give a size like \"32GiB\"")
	}
	if k.MinFreeSpace < 0 {
		ps.add("containers.min_free_space", "must be 0 or more; give a size like \"2GiB\"")
	}
	for i, b := range k.Bind {
		key := fmt.Sprintf("containers.bind[%d]", i)
		bindPath(ps, key+".source", b.Source, "a host directory like \"/scratch/$USER\"")
		bindPath(ps, key+".destination", b.Destination, "a directory of the images like \"/scratch\"")
	}
	if k.RequireSigned && k.Keyring == "" {
		ps.add("containers.keyring", "required with require_signed; give the file of OpenPGP public keys that sign your images")
	}
	if k.Keyring != "" && absPath(ps, "containers.keyring", k.Keyring, false, "") {
		if _, err := os.Stat(k.Keyring); err != nil {
			ps.add("containers.keyring", "%v; give a readable file of OpenPGP public keys", err)
		}
	}
}

// bindPath checks a bind's path: absolute once $USER and $HOME (the only
// variables) are replaced.
func bindPath(ps *problems, key, p, what string) {
	var unknown []string
	expanded := os.Expand(p, func(name string) string {
		switch name {
		case "USER":
			return "user"
		case "HOME":
			return "/home/user"
		}
		unknown = append(unknown, "$"+name)
		return ""
	})
	if len(unknown) > 0 {
		ps.add(key, "%q uses %s; only $USER and $HOME are replaced", p, strings.Join(unknown, ", "))
		return
	}
	if p != "" && !filepath.IsAbs(expanded) {
		ps.add(key, "%q is a relative path; give an absolute path, or one under $HOME", p)
		return
	}
	absPath(ps, key, expanded, true, what)
}

// HomeBound reports whether a bind mounts each account's home directory at
// its own path ($HOME at $HOME), so HOME can stay the account's home
// inside containers.
func (k Containers) HomeBound() bool {
	home := func(p string) bool { return p == "$HOME" || p == "${HOME}" }
	for _, b := range k.Bind {
		if home(b.Source) && home(b.Destination) {
			return true
		}
	}
	return false
}

func (c *Config) validateLog(ps *problems) {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		ps.add("log.level", "%q is not a level; use \"debug\", \"info\", \"warn\" or \"error\"", c.Log.Level)
	}
	if !slices.Contains([]string{"auto", "json", "console"}, c.Log.Format) {
		ps.add("log.format", "%q is not a format; use \"auto\", \"json\" or \"console\"", c.Log.Format)
	}
}
