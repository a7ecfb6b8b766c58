package daemon

import (
	"errors"
	"fmt"
	"testing"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/isolation"
)

func TestMapperRules(t *testing.T) {
	m, err := newMapper(conf.Auth{MinUID: 1000, Map: []conf.MapRule{
		{Match: "admin@example.org", Account: "ops"},
		{Regex: `^([a-z]+)@example\.org$`, Account: "$1"},
		{Regex: `^uid:([0-9]+)$`, Account: "$1"},
		{Regex: `^CN=(?P<user>[a-z]+),O=Lab$`, Account: "lab-${user}"},
		{Regex: `([a-z]+)@lab`, Account: "$1"}, // unanchored as written
	}})
	if err != nil {
		t.Fatal(err)
	}
	m.lookup = func(name string, minUID uint32) (isolation.Account, error) {
		if name == "0" || name == "root" {
			return isolation.Account{}, fmt.Errorf("uid 0 is refused: %w", api.ErrDenied)
		}
		return isolation.Account{Name: name, UID: 1000}, nil
	}
	for _, tc := range []struct {
		name, identity, want string
		wantErr              error
	}{
		{"exact first", "admin@example.org", "ops", nil},
		{"regex capture", "alice@example.org", "alice", nil},
		{"uid", "uid:1234", "1234", nil},
		{"named group", "CN=bob,O=Lab", "lab-bob", nil},
		{"unmapped", "mallory@evil.example", "", api.ErrDenied},
		{"root refused", "uid:0", "", api.ErrDenied},
		{"regex is whole-identity", "carol@lab", "carol", nil},
		{"regex suffix refused", "carol@lab.evil.example", "", api.ErrDenied},
		{"regex prefix refused", "evil/carol@lab", "", api.ErrDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acct, err := m.account(tc.identity)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("account(%q) err = %v, want %v", tc.identity, err, tc.wantErr)
				}
				return
			}
			if err != nil || acct.Name != tc.want {
				t.Errorf("account(%q) = %q, %v; want %q", tc.identity, acct.Name, err, tc.want)
			}
		})
	}
}
