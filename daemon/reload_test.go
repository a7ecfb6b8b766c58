package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/conf"
)

// Reload applies [auth] and [tenants] and names, by toml table, every
// other section that changed, as needing a restart.
func TestReloadNamesRestartSections(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		change  func(*conf.Config)
		restart []string // sections the warning names; nil: no warning
	}{
		{"nothing", func(*conf.Config) {}, nil},
		{"auth and tenants", func(c *conf.Config) {
			c.Auth.MinUID++
			c.Auth.Map = append(c.Auth.Map, conf.MapRule{Match: "bob@example.org", Account: "bob"})
			c.Tenants.Default.MaxQueued = 7
			c.Tenants.Account = map[string]conf.Quota{"bob": {MaxRunning: 1}}
		}, nil},
		{"site", func(c *conf.Config) { c.Site.Name = "elsewhere" }, []string{"site"}},
		{"endpoint", func(c *conf.Config) { c.Endpoint.DrainGrace = conf.Duration(time.Hour) }, []string{"endpoint"}},
		{"limits", func(c *conf.Config) { c.Limits.MaxBatch++ }, []string{"limits"}},
		{"workers", func(c *conf.Config) { c.Workers.ServableRetry = !c.Workers.ServableRetry }, []string{"workers"}},
		{"containers", func(c *conf.Config) {
			c.Containers.Bind = append(c.Containers.Bind, conf.Bind{Source: "/scratch", Destination: "/scratch"})
		}, []string{"containers"}},
		{"cache", func(c *conf.Config) { c.Cache.URLs = append(c.Cache.URLs, "https://data.example.org/") }, []string{"cache"}},
		{"batch", func(c *conf.Config) { c.Batch.Pool = append(c.Batch.Pool, c.Batch.Defaults) }, []string{"batch"}},
		{"log", func(c *conf.Config) { c.Log.Level = "error" }, []string{"log"}},
		{"federation", func(c *conf.Config) {
			c.Federation.Peer = append(c.Federation.Peer, conf.FederationPeer{Name: "b", URL: "https://b.example.org:9444"})
		}, []string{"federation"}},
		// Its trust material reloads (certificate rotation); this daemon
		// has no federation to apply it to.
		{"federation trust", func(c *conf.Config) { c.Federation.Cert, c.Federation.CA = "/etc/fxd/site.pem", "/etc/fxd/ca.pem" }, nil},
		{"several, with auth", func(c *conf.Config) {
			c.Auth.MinUID++
			c.Log.Format = "json"
			c.Limits.MaxBatch++
			c.Containers.UserImages = !c.Containers.UserImages
		}, []string{"limits", "containers", "log"}},
	}
	// Every section that needs a restart has a case of its own.
	covered := map[string]bool{}
	for _, tt := range tests {
		if len(tt.restart) == 1 {
			covered[tt.restart[0]] = true
		}
	}
	for f := range reflect.TypeFor[conf.Config]().Fields() {
		if name := f.Tag.Get("toml"); f.IsExported() && name != "auth" && name != "tenants" && !covered[name] {
			t.Errorf("conf.Config.%s: no case changes [%s] alone; add one", f.Name, name)
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running := conf.Dev(dir)
			var logs bytes.Buffer
			d := &Daemon{cfg: running, log: zerolog.New(&logs),
				disp: &dispatcher{tenants: map[string]*tenant{}, quotas: running.Tenants}}
			m, err := newMapper(running.Auth)
			if err != nil {
				t.Fatal(err)
			}
			d.mapperP.Store(m)
			next := conf.Dev(dir)
			tt.change(next)
			if err := d.Reload(next); err != nil {
				t.Fatalf("Reload = %v", err)
			}
			warnings := restartWarnings(t, logs.Bytes())
			switch {
			case tt.restart == nil && len(warnings) > 0:
				t.Errorf("Reload logged %q, want no restart warning", warnings)
			case tt.restart != nil && (len(warnings) != 1 || !slices.Equal(warnings[0], tt.restart)):
				t.Errorf("Reload warned of sections %q, want one warning naming %q", warnings, tt.restart)
			}
			// What SIGHUP applies is applied; the rest is not.
			if !reflect.DeepEqual(d.disp.quotas, next.Tenants) || d.mapper().minUID != next.Auth.MinUID || len(d.mapper().rules) != len(next.Auth.Map) {
				t.Errorf("after Reload: quotas %+v, min_uid %d, %d rules; want %+v, %d, %d",
					d.disp.quotas, d.mapper().minUID, len(d.mapper().rules), next.Tenants, next.Auth.MinUID, len(next.Auth.Map))
			}
			if d.cfg != running {
				t.Errorf("Reload replaced the running config")
			}
		})
	}
}

// restartWarnings returns the sections of each "needs a restart" warning
// in a JSON log.
func restartWarnings(t *testing.T, log []byte) [][]string {
	t.Helper()
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		var e struct {
			Level    string   `json:"level"`
			Sections []string `json:"sections"`
			Message  string   `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if e.Level == "warn" && strings.Contains(e.Message, "until fxd restarts") {
			out = append(out, e.Sections)
		}
	}
	return out
}
