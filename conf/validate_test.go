package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fxd.dev/fxd/internal/testenv"
)

func TestValidateTLS(t *testing.T) {
	dir := t.TempDir()
	site := testenv.NewCA(t, dir, "site")
	cert, key := site.Issue(t, "server", testenv.ServerCert)
	_, otherKey := site.Issue(t, "other", testenv.ServerCert)
	ca := site.CertFile
	notPEM := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		endpoint string
		want     []string // substrings of the problems, in order; none: valid
	}{
		{"https with client certs", fmt.Sprintf("listen = \"127.0.0.1:8443\"\ntls_cert = %q\ntls_key = %q\nclient_ca = %q\n", cert, key, ca), nil},
		{"https only", fmt.Sprintf("listen = \":8443\"\nsocket = \"\"\ntls_cert = %q\ntls_key = %q\n", cert, key), nil},
		{"key of another cert", fmt.Sprintf("listen = \":8443\"\ntls_cert = %q\ntls_key = %q\n", cert, otherKey),
			[]string{"x.toml:5: endpoint.tls_key: load key pair"}},
		{"client ca not pem", fmt.Sprintf("listen = \":8443\"\ntls_cert = %q\ntls_key = %q\nclient_ca = %q\n", cert, key, notPEM),
			[]string{"x.toml:6: endpoint.client_ca: " + notPEM + " holds no PEM certificate"}},
		{"cert is a directory", fmt.Sprintf("listen = \":8443\"\ntls_cert = %q\ntls_key = %q\n", dir, key),
			[]string{"x.toml:4: endpoint.tls_cert: " + dir + " is not a regular file"}},
		{"bad port", fmt.Sprintf("listen = \":99999\"\ntls_cert = %q\ntls_key = %q\n", cert, key),
			[]string{"x.toml:3: endpoint.listen: \":99999\" is not an address"}},
		{"socket too long", "socket = \"/" + strings.Repeat("s", 120) + "\"\n",
			[]string{"x.toml:3: endpoint.socket: path is 121 bytes long"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte("[site]\n[endpoint]\n"+tt.endpoint), "x.toml")
			if err != nil {
				t.Fatal(err)
			}
			wantProblems(t, c.Validate(), tt.want)
		})
	}
}

// A config built or changed in code is validated too, without file lines.
func TestValidateBuilt(t *testing.T) {
	c := Dev(t.TempDir())
	c.Auth.Map = append(c.Auth.Map, MapRule{Match: "admin", Account: "root"})
	c.Tenants.Account = map[string]Quota{"root": {}, "alice": {Memory: 1024}}
	err := c.Validate()
	want := `auth.map[1].account: "root" is root, and tasks never run as root; map the identity to an unprivileged user
tenants.account.alice.memory: 1KiB is too little for any worker; give at least 4MiB
tenants.account.root: "root" is not an account fxd runs tasks as; remove this section`
	if err == nil || err.Error() != want {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, want)
	}
	var p *Problem
	if !errors.As(err, &p) || p.File != "" || p.Line != 0 {
		t.Errorf("first problem %+v, want no file or line", p)
	}
}

// Pools validate with an HTTPS endpoint for their agents, and not without.
func TestValidatePools(t *testing.T) {
	pools, err := os.ReadFile("testdata/pools.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := testenv.NewCA(t, dir, "site").Issue(t, "server", testenv.ServerCert)
	https := fmt.Sprintf("[endpoint]\nlisten = \"127.0.0.1:8443\"\ntls_cert = %q\ntls_key = %q\n", cert, key)
	c, err := Parse(append([]byte(https), pools...), "pools.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(pools with HTTPS) = %v, want nil", err)
	}
	c, err = Parse(pools, "pools.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "batch.pool: pools need endpoint.listen") {
		t.Errorf("Validate(pools without HTTPS) = %v, want a problem saying pools need endpoint.listen", err)
	}
}

// A node agent's config may name key files only the daemon's host holds;
// what the agent itself uses is still checked.
func TestValidateNode(t *testing.T) {
	text := `[endpoint]
listen = ":8443"
tls_cert = "/etc/fxd/tls/nowhere.pem"
tls_key = "/etc/fxd/tls/nowhere.key"
[federation]
listen = ":9444"
cert = "/etc/fxd/federation/nowhere.pem"
key = "/etc/fxd/federation/nowhere.key"
`
	c, err := Parse([]byte(text), "node.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil {
		t.Error("Validate = nil; want the missing key files refused")
	}
	if err := c.ValidateNode(); err != nil {
		t.Errorf("ValidateNode = %v; want nil: an agent reads no key file", err)
	}
	c, err = Parse([]byte(text+"[workers]\nidle_timeout = \"0s\"\n"), "node.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateNode(); err == nil || !strings.Contains(err.Error(), "workers.idle_timeout") {
		t.Errorf("ValidateNode with a bad [workers] = %v; want it refused", err)
	}
}

// wantProblems checks that err holds problems starting with want, in
// order; none: err is nil.
func wantProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Errorf("Validate() = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate() = %v, want an ErrInvalid problem", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Validate() =\n%v\nwant %d problems", err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
}
