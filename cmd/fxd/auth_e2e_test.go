package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/internal/testenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Client certificates from the site CA authenticate over HTTPS; one from
// another CA is refused; a token works over HTTPS too.
func TestHTTPSClientCertificates(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	dir := t.TempDir()
	site := testenv.NewCA(t, dir, "site")
	serverCert, serverKey := site.Issue(t, "fxd-server", testenv.ServerCert)
	clientCert, clientKey := site.Issue(t, "alice-cert", testenv.ClientCert)
	foreign := testenv.NewCA(t, dir, "foreign")
	foreignCert, foreignKey := foreign.Issue(t, "alice-cert", testenv.ClientCert)
	port := freePort(t)
	endpoint := fmt.Sprintf("https://127.0.0.1:%d", port)
	caFile := site.CertFile
	s := startSiteWith(t, fmt.Sprintf("listen = \"127.0.0.1:%d\"\ntls_cert = %q\ntls_key = %q\nclient_ca = %q\n",
		port, serverCert, serverKey, caFile),
		rules+fmt.Sprintf("\n[[auth.map]]\nmatch = \"alice-cert\"\naccount = %q\n", tenants[0].user.Name))

	withCert, err := api.NewClient(endpoint, api.ClientOptions{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})
	if err != nil {
		t.Fatal(err)
	}
	info, err := withCert.Site(ctxT(t, 10*time.Second))
	if err != nil || info.Identity != "alice-cert" || info.Account != tenants[0].user.Name {
		t.Errorf("site with a client certificate = %+v, %v; want identity alice-cert as %s", info, err, tenants[0].user.Name)
	}

	noCred, _ := api.NewClient(endpoint, api.ClientOptions{CAFile: caFile})
	if _, err := noCred.Site(ctxT(t, 10*time.Second)); !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("site with no credential: err = %v, want unauthenticated", err)
	}

	withToken, _ := api.NewClient(endpoint, api.ClientOptions{CAFile: caFile, Token: s.token(tenants[0].id)})
	if info, err := withToken.Site(ctxT(t, 10*time.Second)); err != nil || info.Identity != tenants[0].id {
		t.Errorf("site with a token over HTTPS = %+v, %v; want identity %s", info, err, tenants[0].id)
	}

	foreignClient, _ := api.NewClient(endpoint, api.ClientOptions{CAFile: caFile, CertFile: foreignCert, KeyFile: foreignKey})
	if _, err := foreignClient.Site(ctxT(t, 10*time.Second)); err == nil {
		t.Error("a client certificate from a foreign CA was accepted")
	}
}

// Local users on the unix socket are known by their UID, with no token;
// root is refused.
func TestUnixPeerCredentials(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules+"\n[[auth.map]]\nregex = '^uid:([0-9]+)$'\naccount = \"$1\"\n")
	u := tenants[0].user
	cmd := exec.Command(bin(t, "fx"), "site", "--json")
	cmd.Env = []string{"FX_ENDPOINT=unix://" + s.socket, "HOME=" + u.Home, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fx site as %s: %v\n%s", u.Name, err, out)
	}
	var info api.SiteInfo
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("fx site --json: %v\n%s", err, out)
	}
	if info.Identity != "uid:"+strconv.Itoa(int(u.UID)) || info.Account != u.Name {
		t.Errorf("site info as %s = identity %q account %q, want uid:%d and %s", u.Name, info.Identity, info.Account, u.UID, u.Name)
	}
	// This test runs as root: its UID must not map to any account.
	resp, err := s.rawHTTP().Get("http://fxd/v1/site")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "uid 0") {
		t.Errorf("root on the socket: %d %s, want 403 naming uid 0", resp.StatusCode, body)
	}
}

// Bad requests get a clear error with the right code.
func TestBadRequests(t *testing.T) {
	tenants, rules := newTenants(t, 1)
	s := startSite(t, rules+"\n[limits]\nmax_input_bytes = \"1KiB\"\nmax_batch = 10\n")
	tok := s.token(tenants[0].id)
	c := s.client(tenants[0].id)
	register(t, c, api.FunctionSpec{Name: "echo", Command: []string{"/bin/cat"}})
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code, text                      string
	}{
		{"malformed JSON", "POST", "/v1/tasks", tok, `{"tasks": [{"function": "echo",}]}`, 400, api.CodeInvalid, "malformed JSON"},
		{"unknown field", "POST", "/v1/functions", tok, `{"name": "x", "comand": ["/bin/true"]}`, 400, api.CodeInvalid, "comand"},
		{"oversize input", "POST", "/v1/tasks", tok, `{"tasks": [{"function": "echo", "input_base64": "` + strings.Repeat("QUFB", 400) + `"}]}`, 413, api.CodeTooLarge, "max_input_bytes"},
		{"batch too big", "POST", "/v1/tasks", tok, `{"tasks": [` + strings.TrimSuffix(strings.Repeat(`{"function": "echo"},`, 11), ",") + `]}`, 413, api.CodeTooLarge, "max_batch"},
		{"unknown function", "POST", "/v1/tasks", tok, `{"tasks": [{"function": "nope"}]}`, 404, api.CodeNotFound, "fx functions"},
		{"wrong token", "GET", "/v1/site", "fxd_wrong", ``, 401, api.CodeUnauthenticated, "fxd token issue"},
		{"bad function name", "POST", "/v1/functions", tok, `{"name": "Bad Name", "command": ["/bin/true"]}`, 400, api.CodeInvalid, "function name"},
		{"unknown task", "GET", "/v1/tasks/tnope", tok, ``, 404, api.CodeNotFound, "tnope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://fxd"+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+tc.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := s.rawHTTP().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body api.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.status || body.Error.Code != tc.code || !strings.Contains(body.Error.Message, tc.text) {
				t.Errorf("%s %s = %d %+v, want %d %s mentioning %q", tc.method, tc.path, resp.StatusCode, body.Error, tc.status, tc.code, tc.text)
			}
		})
	}
	// The daemon is still fine.
	if task := run(t, c, "echo", "hi"); task.State != api.StateSucceeded {
		t.Errorf("echo after bad requests: %s %q", task.State, task.Error)
	}
	var remote *api.RemoteError
	if _, err := c.Run(ctxT(t, 10*time.Second), "nope", api.TaskSpec{}); !errors.As(err, &remote) || remote.Status != 404 {
		t.Errorf("client error for unknown function = %v, want a 404 RemoteError", err)
	}
}

// fxd config check names the file, line and key of a mistake.
func TestConfigCheckCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs the fxd binary")
	}
	path := filepath.Join(t.TempDir(), "fxd.toml")
	os.WriteFile(path, []byte("[site]\nname = \"ok\"\n\n[limits]\nmax_batch = \"many\"\n"), 0o600)
	if _, stderr, code := fxdRun(t, "config", "check", path); code == 0 || !strings.Contains(stderr, "fxd.toml:5") || !strings.Contains(stderr, "max_batch") {
		t.Errorf("config check of a bad file: exit %d, stderr %q; want failure naming line 5 and max_batch", code, stderr)
	}
	def, stderr, code := fxdRun(t, "config", "default")
	if code != 0 {
		t.Fatalf("fxd config default: exit %d: %s", code, stderr)
	}
	os.WriteFile(path, []byte(def), 0o600)
	if stdout, stderr, code := fxdRun(t, "config", "check", path); code != 0 || stdout != path+": ok\n" {
		t.Errorf("config check of `fxd config default`: exit %d, stdout %q, stderr %q; want exit 0, %s: ok", code, stdout, stderr, path)
	}
}
