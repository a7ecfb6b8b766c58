package isolation

import (
	"errors"
	"testing"

	"fxd.dev/fxd/api"
)

func TestSpecCheckBinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		bind Bind
		ok   bool
	}{
		{"read-only", Bind{Source: "/var/lib/fxd/task-data/w1", Destination: "/tmp/work/data", ReadOnly: true}, true},
		{"writable", Bind{Source: "/scratch/a", Destination: "/scratch"}, true},
		{"relative source", Bind{Source: "data", Destination: "/data"}, false},
		{"relative destination", Bind{Source: "/data", Destination: "data"}, false},
		{"dot-dot", Bind{Source: "/data", Destination: "/tmp/../etc"}, false},
		{"trailing slash", Bind{Source: "/data/", Destination: "/data"}, false},
		{"root destination", Bind{Source: "/data", Destination: "/"}, false},
		{"empty", Bind{}, false},
		{"NUL", Bind{Source: "/da\x00ta", Destination: "/data"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Spec{ID: "t", Account: Account{Name: "a", UID: 1000, GID: 1000}, Argv: []string{"/bin/true"}, Binds: []Bind{tc.bind}}
			err := s.Check()
			if tc.ok && err != nil || !tc.ok && !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Check(bind %+v) = %v, want ok: %v", tc.bind, err, tc.ok)
			}
		})
	}
}
