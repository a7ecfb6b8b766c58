package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/daemon"
	"fxd.dev/fxd/internal/testenv"
)

// waitRefused polls GET /v1/site with c, whose token the daemon accepted
// before the revoke, until it gets 401 unauthenticated, for at most 5 s,
// and fails the test otherwise. No SIGHUP is sent: the daemon must notice
// the token file change by itself.
func waitRefused(t *testing.T, c *api.Client, what string) {
	t.Helper()
	start := time.Now()
	for {
		_, err := c.Site(ctxT(t, 10*time.Second))
		var remote *api.RemoteError
		switch {
		case errors.As(err, &remote) && remote.Status == http.StatusUnauthorized:
			// The message comes from the JSON error body: an answer without
			// one would carry the HTTP status text instead.
			if remote.Code != api.CodeUnauthenticated || !strings.HasPrefix(remote.Message, "unknown or revoked token") {
				t.Errorf("%s after revoke: 401 %+v; want the JSON error %s, unknown or revoked token", what, remote, api.CodeUnauthenticated)
			}
			t.Logf("%s refused %v after revoke", what, time.Since(start).Round(time.Millisecond))
			return
		case err != nil && remote == nil:
			t.Fatalf("GET /v1/site with %s: %v", what, err)
		case time.Since(start) > 5*time.Second:
			t.Fatalf("%s still answered (err %v) 5s after fxd token revoke (no SIGHUP sent); want 401", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertAccepted fails the test unless c's token is accepted as tn.
func assertAccepted(t *testing.T, c *api.Client, tn tenant, when string) {
	t.Helper()
	if info, err := c.Site(ctxT(t, 10*time.Second)); err != nil || info.Identity != tn.id || info.Account != tn.user.Name {
		t.Fatalf("GET /v1/site with the token of %s %s = %+v, %v; want 200 as %s", tn.id, when, info, err, tn.user.Name)
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
		if len(f) != 3 || len(f[0]) != shownHashDigits || f[2] != time.Now().UTC().Format(time.DateOnly) {
			t.Errorf("fxd token list row %q; want a %d-digit hash prefix, the identity and today's date", l, shownHashDigits)
			continue
		}
		got[f[1]] = f[0]
	}
	return got
}

// shown is the hash prefix fxd token issue and list show for tok.
func shown(tok string) string { return daemon.TokenHash(tok)[:shownHashDigits] }

// The admin's token life cycle with the real binaries against a running
// daemon over HTTPS: fxd token issue (flags in either order) prints a token
// that the API accepts; fxd token list shows identities and hash prefixes,
// never tokens; fxd token revoke (by hash prefix, then by identity) makes
// the daemon refuse the token it accepted before (401 unauthenticated)
// within 5 s without SIGHUP, and leaves other tokens working.
func TestTokenLifecycleOverHTTPS(t *testing.T) {
	tenants, rules := newTenants(t, 2)
	ca := testenv.NewCA(t, t.TempDir(), "site")
	cert, key := ca.Issue(t, "fxd-server", testenv.ServerCert)
	port := freePort(t)
	s := startSiteWith(t, fmt.Sprintf("listen = \"127.0.0.1:%d\"\ntls_cert = %q\ntls_key = %q\n", port, cert, key), rules)
	cfg := s.configPath()
	a, b := tenants[0], tenants[1]

	tokA, noticeA := issueToken(t, a.id, "token", "issue", "--identity", a.id, "--config", cfg)
	tokB, _ := issueToken(t, b.id, "token", "--config", cfg, "issue", "--identity", b.id)
	if strings.Contains(noticeA, "warning") {
		t.Errorf("fxd token issue for %s, which an [[auth.map]] rule maps: notice %q; want no warning", a.id, noticeA)
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	as := func(tok string) *api.Client {
		c, err := api.NewClient(base, api.ClientOptions{CAFile: ca.CertFile, Token: tok, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cA, cB := as(tokA), as(tokB)
	assertAccepted(t, cA, a, "before any revoke")
	assertAccepted(t, cB, b, "before any revoke")

	listed := listTokens(t, []string{tokA, tokB}, "token", "list", "--config", cfg)
	if len(listed) != 2 || listed[a.id] != shown(tokA) || listed[b.id] != shown(tokB) {
		t.Fatalf("fxd token list = %v; want %s → %s and %s → %s", listed, a.id, shown(tokA), b.id, shown(tokB))
	}

	// Revoke A by the hash prefix that list printed, flags after it.
	if _, stderr, code := fxdRun(t, "token", "revoke", listed[a.id], "--config", cfg); code != 0 || !strings.Contains(stderr, "revoked 1") {
		t.Fatalf("fxd token revoke %s: exit %d, stderr %q; want exit 0 and revoked 1", listed[a.id], code, stderr)
	}
	waitRefused(t, cA, "the token of "+a.id)
	assertAccepted(t, cB, b, "after revoking "+a.id+"'s")
	if listed := listTokens(t, []string{tokA, tokB}, "token", "--config", cfg, "list"); len(listed) != 1 || listed[b.id] == "" {
		t.Errorf("fxd token list after revoking %s = %v; want only %s", a.id, listed, b.id)
	}

	// Revoke B by identity, flags before the verb.
	if _, stderr, code := fxdRun(t, "token", "--config", cfg, "revoke", b.id); code != 0 {
		t.Fatalf("fxd token revoke %s: exit %d: %s", b.id, code, stderr)
	}
	waitRefused(t, cB, "the token of "+b.id)

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
	// A hash prefix needs 8 hex digits or more: 7 of a token's revoke
	// nothing, 8 revoke it.
	tok, _, err := cmd(append([]string{"issue", "--identity", "p@example.org"}, dev...)...)
	if err != nil {
		t.Fatal(err)
	}
	hash := daemon.TokenHash(strings.TrimSpace(tok))
	listed := func() string {
		stdout, _, err := cmd(append([]string{"list"}, dev...)...)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		return stdout
	}
	if _, _, err := cmd(append([]string{"revoke", hash[:7]}, dev...)...); err == nil || !strings.Contains(err.Error(), "no token matches") {
		t.Errorf("revoke by a 7-digit hash prefix = %v; want no token matches", err)
	}
	if !strings.Contains(listed(), "p@example.org") {
		t.Errorf("list after revoking by a 7-digit hash prefix lacks p@example.org; want its token kept")
	}
	if _, stderr, err := cmd(append([]string{"revoke", hash[:8]}, dev...)...); err != nil || !strings.Contains(stderr, "revoked 1") {
		t.Errorf("revoke by an 8-digit hash prefix = %v, stderr %q; want revoked 1", err, stderr)
	}
	if strings.Contains(listed(), "p@example.org") {
		t.Errorf("list after revoking by an 8-digit hash prefix still shows p@example.org")
	}

	if _, _, err := cmd("-h"); err != nil {
		t.Errorf("cmdToken(-h) = %v; want the usage and no error", err)
	}
}
