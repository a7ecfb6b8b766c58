package conf

import (
	"testing"
	"time"
)

func TestSizeText(t *testing.T) {
	tests := []struct {
		name, in string
		want     Size
		out      string // MarshalText of want
	}{
		{"bytes", "4096", 4096, "4KiB"},
		{"odd bytes", "1000", 1000, "1000"},
		{"zero", "0", 0, "0"},
		{"KiB", "512KiB", 512 << 10, "512KiB"},
		{"MiB", "10MiB", 10 << 20, "10MiB"},
		{"GiB", "2GiB", 2 << 30, "2GiB"},
		{"TiB", "3TiB", 3 << 40, "3TiB"},
		{"KB", "3KB", 3000, "3000"},
		{"GB", "1GB", 1e9, "1000000000"},
		{"B", "17B", 17, "17"},
		{"spaces", " 8 MiB ", 8 << 20, "8MiB"},
		{"mixed", "1536MiB", 1536 << 20, "1536MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Size
			if err := s.UnmarshalText([]byte(tt.in)); err != nil || s != tt.want {
				t.Fatalf("UnmarshalText(%q) = %d, %v, want %d", tt.in, s, err, tt.want)
			}
			out, _ := s.MarshalText()
			if string(out) != tt.out {
				t.Errorf("MarshalText(%d) = %q, want %q", s, out, tt.out)
			}
			var back Size
			if err := back.UnmarshalText(out); err != nil || back != s {
				t.Errorf("UnmarshalText(MarshalText(%d)) = %d, %v", s, back, err)
			}
		})
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5GiB", "10 megabytes", "9999999999TiB", "0x10"} {
		t.Run("bad "+bad, func(t *testing.T) {
			var s Size
			if err := s.UnmarshalText([]byte(bad)); err == nil {
				t.Errorf("UnmarshalText(%q) = %d, want an error", bad, s)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		out      string
	}{
		{"seconds", "30s", 30 * time.Second, "30s"},
		{"minutes", "5m", 5 * time.Minute, "5m0s"},
		{"hours", "168h", 168 * time.Hour, "168h0m0s"},
		{"mixed", "2m30s", 150 * time.Second, "2m30s"},
		{"millis", "250ms", 250 * time.Millisecond, "250ms"},
		{"zero", "0s", 0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			if err := d.UnmarshalText([]byte(tt.in)); err != nil || d.D() != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v, want %v", tt.in, d.D(), err, tt.want)
			}
			out, _ := d.MarshalText()
			if string(out) != tt.out {
				t.Errorf("MarshalText(%v) = %q, want %q", d.D(), out, tt.out)
			}
			var back Duration
			if err := back.UnmarshalText(out); err != nil || back != d {
				t.Errorf("UnmarshalText(MarshalText(%v)) = %v, %v", d.D(), back.D(), err)
			}
		})
	}
	for _, bad := range []string{"", "60", "-5m", "5 minutes", "1d"} {
		t.Run("bad "+bad, func(t *testing.T) {
			var d Duration
			if err := d.UnmarshalText([]byte(bad)); err == nil {
				t.Errorf("UnmarshalText(%q) = %v, want an error", bad, d.D())
			}
		})
	}
}

func TestModeText(t *testing.T) {
	tests := []struct {
		name, in string
		want     Mode
		out      string
	}{
		{"world", "0666", 0o666, "0666"},
		{"group", "0660", 0o660, "0660"},
		{"short", "600", 0o600, "0600"},
		{"none", "0", 0, "0000"},
		{"all", "777", 0o777, "0777"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Mode
			if err := m.UnmarshalText([]byte(tt.in)); err != nil || m != tt.want {
				t.Fatalf("UnmarshalText(%q) = %o, %v, want %o", tt.in, m, err, tt.want)
			}
			out, _ := m.MarshalText()
			if string(out) != tt.out {
				t.Errorf("MarshalText(%o) = %q, want %q", m, out, tt.out)
			}
			var back Mode
			if err := back.UnmarshalText(out); err != nil || back != m {
				t.Errorf("UnmarshalText(MarshalText(%o)) = %o, %v", m, back, err)
			}
		})
	}
	for _, bad := range []string{"", "0999", "rw-rw-rw-", "01777", "-1"} {
		t.Run("bad "+bad, func(t *testing.T) {
			var m Mode
			if err := m.UnmarshalText([]byte(bad)); err == nil {
				t.Errorf("UnmarshalText(%q) = %o, want an error", bad, m)
			}
		})
	}
}

func TestQuotaFor(t *testing.T) {
	def := Quota{MaxRunning: 64, MaxQueued: 1000, MaxWorkers: 8, Memory: 2 << 30, CPUs: 2, Pids: 1024}
	ts := Tenants{Default: def, Account: map[string]Quota{
		"alice": {MaxRunning: 256, CPUs: 8.5},
		"bob":   {MaxQueued: 5, MaxWorkers: 1, Memory: 64 << 20, Pids: 64},
		"carol": {},
	}}
	tests := []struct {
		account string
		want    Quota
	}{
		{"alice", Quota{MaxRunning: 256, MaxQueued: 1000, MaxWorkers: 8, Memory: 2 << 30, CPUs: 8.5, Pids: 1024}},
		{"bob", Quota{MaxRunning: 64, MaxQueued: 5, MaxWorkers: 1, Memory: 64 << 20, CPUs: 2, Pids: 64}},
		{"carol", def},
		{"dave", def},
	}
	for _, tt := range tests {
		t.Run(tt.account, func(t *testing.T) {
			if got := ts.QuotaFor(tt.account); got != tt.want {
				t.Errorf("QuotaFor(%q) = %+v, want %+v", tt.account, got, tt.want)
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"all", Problem{File: "fxd.toml", Line: 12, Key: "endpoint.tls_cert", Msg: "required"}, "fxd.toml:12: endpoint.tls_cert: required"},
		{"no line", Problem{File: "fxd.toml", Key: "endpoint", Msg: "x"}, "fxd.toml: endpoint: x"},
		{"no file", Problem{Key: "log.level", Msg: "x"}, "log.level: x"},
		{"line only", Problem{Line: 3, Msg: "x"}, "line 3: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		parent, name string
		siblings     []string
		want         string
	}{
		{"endpoint", "listne", []string{"listen", "socket"}, "; did you mean endpoint.listen?"},
		{"endpoint", "sock", []string{"listen", "socket"}, "; did you mean endpoint.socket?"},
		{"site", "cgroup_parent", []string{"name", "state_dir"}, "; did you mean workers.cgroup_parent?"},
		{"", "Site", tagNames(reflectConfig()), "; did you mean site?"},
		{"log", "colour", []string{"level", "format"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := suggest(tt.parent, tt.name, tt.siblings); got != tt.want {
				t.Errorf("suggest(%q, %q) = %q, want %q", tt.parent, tt.name, got, tt.want)
			}
		})
	}
}
