package isolation

import (
	"errors"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

// The cache answers as LookupAccount does, refusals included, and keeps
// each answer for its TTL only.
func TestAccountCache(t *testing.T) {
	c := NewAccountCache(time.Hour)
	for range 2 {
		if _, err := c.Lookup("root", 1000); !errors.Is(err, api.ErrDenied) {
			t.Errorf("Lookup(root) = %v, want api.ErrDenied as LookupAccount says", err)
		}
		if _, err := c.Lookup("fxd-no-such-user", 1000); !errors.Is(err, api.ErrDenied) {
			t.Errorf("Lookup(no such user) = %v, want api.ErrDenied", err)
		}
	}
	if len(c.answers) != 2 {
		t.Errorf("cache holds %d answers, want 2", len(c.answers))
	}
	k := accountKey{"root", 1000}
	planted := cachedAccount{acct: Account{Name: "planted", UID: 4242}, at: time.Now()}
	c.answers[k] = planted
	if a, err := c.Lookup("root", 1000); err != nil || a.Name != "planted" {
		t.Errorf("Lookup within the TTL = %+v, %v; want the kept answer", a, err)
	}
	planted.at = time.Now().Add(-2 * time.Hour)
	c.answers[k] = planted
	if _, err := c.Lookup("root", 1000); !errors.Is(err, api.ErrDenied) {
		t.Errorf("Lookup past the TTL = %v; want NSS asked again (root refused)", err)
	}
}
