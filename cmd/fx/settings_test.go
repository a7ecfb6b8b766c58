package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
)

func writeConfig(t *testing.T, home, text string) {
	t.Helper()
	dir := filepath.Join(home, ".config", "fx")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestResolveOrder(t *testing.T) {
	const file = "endpoint = \"unix:///file.sock\"\ntoken = \"file-token\"\nca = \"ca.pem\"\ncert = \"/abs/cert.pem\"\n"
	tests := []struct {
		name     string
		file     string // config.toml, "" for none
		env      map[string]string
		flags    globals
		endpoint string
		token    string
		ca       string // relative to the config dir when not absolute
		cert     string
	}{
		{name: "default", endpoint: api.DefaultEndpoint},
		{name: "file", file: file, endpoint: "unix:///file.sock", token: "file-token", ca: "ca.pem", cert: "/abs/cert.pem"},
		{name: "env over file", file: file,
			env:      map[string]string{"FX_ENDPOINT": "https://env:1", "FX_TOKEN": "env-token", "FX_CA": "/env/ca.pem", "FX_CERT": "/env/c", "FX_KEY": "/env/k"},
			endpoint: "https://env:1", token: "env-token", ca: "/env/ca.pem", cert: "/env/c"},
		{name: "flags over env", file: file,
			env:      map[string]string{"FX_ENDPOINT": "https://env:1", "FX_TOKEN": "env-token"},
			flags:    globals{endpoint: "/flag.sock", token: "flag-token", ca: "/flag/ca"},
			endpoint: "/flag.sock", token: "flag-token", ca: "/flag/ca", cert: "/abs/cert.pem"},
		{name: "env only", env: map[string]string{"FX_TOKEN": "env-token"}, endpoint: api.DefaultEndpoint, token: "env-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			if tt.file != "" {
				writeConfig(t, home, tt.file)
			}
			env := map[string]string{"HOME": home}
			for k, v := range tt.env {
				env[k] = v
			}
			c := &cli{getenv: func(k string) string { return env[k] }}
			s, err := c.resolve(&tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			ca := tt.ca
			if ca != "" && !filepath.IsAbs(ca) {
				ca = filepath.Join(home, ".config", "fx", ca)
			}
			if s.endpoint != tt.endpoint || s.opts.Token != tt.token || s.opts.CAFile != ca || s.opts.CertFile != tt.cert {
				t.Errorf("resolve() = %q %+v, want endpoint %q token %q ca %q cert %q", s.endpoint, s.opts, tt.endpoint, tt.token, ca, tt.cert)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"unknown keys", "endpoint = \"/x.sock\"\ntokn = \"x\"\n[extra]\nk = 1\n", "unknown keys tokn, extra, extra.k;"},
		{"syntax", "endpoint = \n", "config.toml:1:"},
		{"type", "endpoint = 3\n", "config.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			writeConfig(t, home, tt.file)
			code, _, stderr := fx(t, map[string]string{"HOME": home}, "", "site")
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("fx site with config %q = exit %d, stderr %q; want exit 2 mentioning %q", tt.file, code, stderr, tt.want)
			}
		})
	}
}

// The config file, env and flags reach the endpoint, and global flags work
// before and after the subcommand.
func TestSettingsReachEndpoint(t *testing.T) {
	f := newFakeAPI(t)
	home := t.TempDir()
	writeConfig(t, home, "endpoint = \"unix://"+f.socket+"\"\ntoken = \"from-file\"\n")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"file", map[string]string{"HOME": home}, []string{"site", "--json"}, "token:from-file"},
		{"env token", map[string]string{"HOME": home, "FX_TOKEN": "from-env"}, []string{"site", "--json"}, "token:from-env"},
		{"flag token after", map[string]string{"HOME": home, "FX_TOKEN": "from-env"}, []string{"whoami", "--token", "from-flag", "--json"}, "token:from-flag"},
		{"flags before", map[string]string{"HOME": t.TempDir()}, []string{"--json", "--endpoint", f.socket, "site"}, "uid:1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := fx(t, tt.env, "", tt.args...)
			var info api.SiteInfo
			if code != 0 || json.Unmarshal([]byte(stdout), &info) != nil || info.Identity != tt.want {
				t.Errorf("fx %v = exit %d, %q, %q; want identity %s", tt.args, code, stdout, stderr, tt.want)
			}
			if stderr != "" {
				t.Errorf("fx %v wrote to stderr: %q", tt.args, stderr)
			}
		})
	}
	code, stdout, _ := fx(t, map[string]string{"HOME": home}, "", "site")
	if code != 0 || !strings.Contains(stdout, "identity:") || !strings.Contains(stdout, "1MiB") {
		t.Errorf("fx site = exit %d, %q; want a table with identity and max input 1MiB", code, stdout)
	}
}

func TestConnectError(t *testing.T) {
	env := map[string]string{"HOME": t.TempDir(), "FX_ENDPOINT": filepath.Join(t.TempDir(), "none.sock")}
	code, _, stderr := fx(t, env, "", "functions")
	if code != exitAPI || !strings.Contains(stderr, "is fxd running?") {
		t.Errorf("fx functions with no daemon = exit %d, %q; want 3 and a hint", code, stderr)
	}
	env["FX_ENDPOINT"] = "http://plain:80"
	if code, _, stderr := fx(t, env, "", "functions"); code != exitUsage || !strings.Contains(stderr, "https://host:port") {
		t.Errorf("fx functions with an http endpoint = exit %d, %q; want 2", code, stderr)
	}
}
