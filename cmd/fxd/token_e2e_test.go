package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// fxdRun runs the fxd binary with args (30 s at most) and returns its
// stdout, stderr and exit code.
func fxdRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "fxd"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("fxd %s: no exit within 30s", strings.Join(args, " "))
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("fxd %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// tokenLine is what `fxd token issue` prints on stdout: the token alone.
var tokenLine = regexp.MustCompile(`^fxd_[A-Za-z0-9_-]{43}\n$`)

// issueToken runs `fxd token` with args (an issue command in some order)
// and returns the token and the notice, checking that stdout holds only
// the token and stderr a notice without it.
func issueToken(t *testing.T, identity string, args ...string) (tok, notice string) {
	t.Helper()
	stdout, stderr, code := fxdRun(t, args...)
	if code != 0 || !tokenLine.MatchString(stdout) {
		t.Fatalf("fxd %s: exit %d, stdout %q, stderr %q; want exit 0 and only the token on stdout", strings.Join(args, " "), code, stdout, stderr)
	}
	tok = strings.TrimSpace(stdout)
	if !strings.Contains(stderr, identity) || strings.Contains(stderr, tok) {
		t.Errorf("fxd %s: stderr %q; want a notice naming %s, without the token", strings.Join(args, " "), stderr, identity)
	}
	return tok, stderr
}

// siteAs calls GET /v1/site with a bearer token and returns the status
// and the body, decoded as SiteInfo on 200 and ErrorBody otherwise.
func siteAs(t *testing.T, c *http.Client, base, tok string) (int, api.SiteInfo, api.ErrorBody, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/site", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s/v1/site: %v", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var info api.SiteInfo
	var eb api.ErrorBody
	if resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(body, &info)
	} else {
		err = json.Unmarshal(body, &eb)
	}
	if err != nil {
		t.Fatalf("GET /v1/site: %d with a body that is not JSON (%v): %q", resp.StatusCode, err, body)
	}
	return resp.StatusCode, info, eb, resp.Header
}

// waitRefused polls GET /v1/site with tok until it gets 401 with a JSON
// error, for at most 5 s, and fails the test otherwise. No SIGHUP is sent:
// the daemon must notice the token file change by itself.
func waitRefused(t *testing.T, c *http.Client, base, tok, what string) {
	t.Helper()
	start := time.Now()
	for {
		code, _, eb, h := siteAs(t, c, base, tok)
		if code == http.StatusUnauthorized {
			if eb.Error.Code != api.CodeUnauthenticated || !strings.Contains(eb.Error.Message, "revoked") ||
				!strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("%s after revoke: 401 %s %+v; want a JSON error %s saying the token is revoked", what, h.Get("Content-Type"), eb.Error, api.CodeUnauthenticated)
			}
			t.Logf("%s refused %v after revoke", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s still answered %d 5s after fxd token revoke (no SIGHUP sent); want 401", what, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listTokens runs fxd token list with args and returns identity -> hash
// prefix, failing if the output shows any of the secrets.
func listTokens(t *testing.T, secrets []string, args ...string) map[string]string {
	t.Helper()
	stdout, stderr, code := fxdRun(t, args...)
	if code != 0 {
		t.Fatalf("fxd %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	for _, s := range secrets {
		secret := strings.TrimPrefix(s, "fxd_")
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("fxd token list shows a token:\n%s", stdout)
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if f := strings.Fields(lines[0]); len(f) != 3 || f[0] != "HASH" || f[1] != "IDENTITY" || f[2] != "ISSUED" {
		t.Errorf("fxd token list header = %q, want HASH IDENTITY ISSUED", lines[0])
	}
	got := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 3 || len(f[0]) != 12 || f[2] != time.Now().UTC().Format(time.DateOnly) {
			t.Errorf("fxd token list row %q; want a 12-digit hash prefix, the identity and today's date", l)
			continue
		}
		got[f[1]] = f[0]
	}
	return got
}

func hashPrefix(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])[:12]
}

// The admin's token life cycle with the real binaries against a running
// daemon over HTTPS: fxd token issue (flags in either order) prints a token
// that the API accepts; fxd token list shows identities and hash prefixes,
// never tokens; fxd token revoke (by hash prefix, then by identity) makes
// the daemon refuse the token with a JSON 401 within 5 s without SIGHUP,
// and leaves other tokens working.
func TestTokenLifecycleOverHTTPS(t *testing.T) {
	tenants, rules := newTenants(t, 2)
	dir := t.TempDir()
	ca := newPKI(t, dir, "site")
	cert, key := ca.issue(t, "fxd-server", true)
	port := freePort(t)
	s := startSiteWith(t, fmt.Sprintf("listen = \"127.0.0.1:%d\"\ntls_cert = %q\ntls_key = %q\n", port, cert, key), rules)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	pem, err := os.ReadFile(filepath.Join(dir, "site-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(c.CloseIdleConnections)
	cfg := s.configPath()
	a, b := tenants[0], tenants[1]

	tokA, noticeA := issueToken(t, a.id, "token", "issue", "--identity", a.id, "--config", cfg)
	tokB, _ := issueToken(t, b.id, "token", "--config", cfg, "issue", "--identity", b.id)
	if strings.Contains(noticeA, "warning") {
		t.Errorf("fxd token issue for %s, which an [[auth.map]] rule maps: notice %q; want no warning", a.id, noticeA)
	}
	for _, tc := range []struct {
		tenant tenant
		tok    string
	}{{a, tokA}, {b, tokB}} {
		code, info, eb, _ := siteAs(t, c, base, tc.tok)
		if code != http.StatusOK || info.Identity != tc.tenant.id || info.Account != tc.tenant.user.Name {
			t.Fatalf("GET /v1/site with the token of %s = %d %+v %+v; want 200 as %s", tc.tenant.id, code, info, eb.Error, tc.tenant.user.Name)
		}
	}

	listed := listTokens(t, []string{tokA, tokB}, "token", "list", "--config", cfg)
	if len(listed) != 2 || listed[a.id] != hashPrefix(tokA) || listed[b.id] != hashPrefix(tokB) {
		t.Fatalf("fxd token list = %v; want %s → %s and %s → %s", listed, a.id, hashPrefix(tokA), b.id, hashPrefix(tokB))
	}

	// Revoke A by the hash prefix that list printed, flags after it.
	if _, stderr, code := fxdRun(t, "token", "revoke", listed[a.id], "--config", cfg); code != 0 || !strings.Contains(stderr, "revoked 1") {
		t.Fatalf("fxd token revoke %s: exit %d, stderr %q; want exit 0 and revoked 1", listed[a.id], code, stderr)
	}
	waitRefused(t, c, base, tokA, "the token of "+a.id)
	if code, info, eb, _ := siteAs(t, c, base, tokB); code != http.StatusOK || info.Identity != b.id {
		t.Errorf("the token of %s after revoking %s's = %d %+v; want still 200", b.id, a.id, code, eb.Error)
	}
	if listed := listTokens(t, []string{tokA, tokB}, "token", "--config", cfg, "list"); len(listed) != 1 || listed[b.id] == "" {
		t.Errorf("fxd token list after revoking %s = %v; want only %s", a.id, listed, b.id)
	}

	// Revoke B by identity, flags before the verb.
	if _, stderr, code := fxdRun(t, "token", "--config", cfg, "revoke", b.id); code != 0 {
		t.Fatalf("fxd token revoke %s: exit %d: %s", b.id, code, stderr)
	}
	waitRefused(t, c, base, tokB, "the token of "+b.id)

	// Nothing left to revoke: a clear error, exit 1.
	if _, stderr, code := fxdRun(t, "token", "revoke", b.id, "--config", cfg); code != 1 || !strings.Contains(stderr, "no token matches") {
		t.Errorf("fxd token revoke of a revoked identity: exit %d, stderr %q; want exit 1 and no token matches", code, stderr)
	}
}

// fxd token parses its flags wherever an admin puts them, and refuses
// mistakes with exit 1 and a message that says what to do. It runs in
// process on a --dev state dir of its own.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	dev := []string{"--dev", "--state-dir", dir}
	cmd := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := cmdToken(args, &out, &errb)
		return out.String(), errb.String(), err
	}
	orders := map[string][]string{
		"verb first":       append([]string{"issue", "--identity", "v@example.org"}, dev...),
		"site flags first": append(append([]string(nil), dev...), "issue", "--identity", "s@example.org"),
		"identity first":   append([]string{"--identity", "i@example.org", "issue"}, dev...),
		"split":            {"--dev", "issue", "--state-dir", dir, "--identity", "x@example.org"},
	}
	for name, args := range orders {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, err := cmd(args...)
			if err != nil || !tokenLine.MatchString(stdout) {
				t.Fatalf("cmdToken(%q) = stdout %q, err %v; want only a token", args, stdout, err)
			}
			if !strings.Contains(stderr, "no [[auth.map]] rule matches") {
				t.Errorf("cmdToken(%q) stderr = %q; want the warning that the dev config maps no token identities", args, stderr)
			}
		})
	}
	stdout, _, err := cmd(append([]string{"list"}, dev...)...)
	for _, id := range []string{"v@example.org", "s@example.org", "i@example.org", "x@example.org"} {
		if err != nil || !strings.Contains(stdout, id) {
			t.Errorf("list after issuing = %q, %v; want %s listed", stdout, err, id)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tokens")); err != nil {
		t.Errorf("--dev --state-dir %s: token file not at <state-dir>/tokens (where fxd serve --dev reads it): %v", dir, err)
	}
	site := siteFlags{dev: true}
	if cfg, err := site.load(); err != nil || cfg.TokenFile() != devStateDir+"/tokens" {
		t.Errorf("--dev token file = %v, %v; want %s/tokens, the file of make run's daemon", cfg, err, devStateDir)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no verb", dev, "missing verb"},
		{"unknown verb", append([]string{"mint"}, dev...), `unknown verb "mint"`},
		{"issue without identity", append([]string{"issue"}, dev...), "--identity is required"},
		{"identity with list", append([]string{"list", "--identity", "v@example.org"}, dev...), "only to issue"},
		{"argument to list", append([]string{"list", "extra"}, dev...), `unexpected argument "extra"`},
		{"revoke nothing", append([]string{"revoke"}, dev...), "give the hash prefix"},
		{"revoke unknown", append([]string{"revoke", "nobody@example.org"}, dev...), "no token matches"},
		{"short hash prefix", append([]string{"revoke", "abc"}, dev...), "at least 8 hex digits"},
		{"config and dev", append([]string{"list", "--config", filepath.Join(dir, "x.toml")}, dev...), "exclude each other"},
		{"state dir without dev", []string{"list", "--config", filepath.Join(dir, "x.toml"), "--state-dir", dir}, "only with --dev"},
		{"missing config", []string{"list", "--config", filepath.Join(dir, "none.toml")}, "fxd config default >"},
		{"bad flag", []string{"list", "--bogus"}, "-bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := cmd(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("cmdToken(%q) = %v; want an error mentioning %q", tc.args, err, tc.want)
			}
		})
	}
	if _, _, err := cmd("-h"); err != nil {
		t.Errorf("cmdToken(-h) = %v; want the usage and no error", err)
	}
}
