package isolation

import (
	"errors"
	"os/user"
	"testing"

	"fxd.dev/fxd/api"
)

func TestLookupAccountRefusesPrivilegedAndShared(t *testing.T) {
	for _, name := range []string{"root", "0", "65534", "4294967295"} {
		if _, err := LookupAccount(name, 0); !errors.Is(err, api.ErrDenied) {
			t.Errorf("LookupAccount(%q) err = %v, want ErrDenied", name, err)
		}
	}
	if u, err := user.Lookup("nobody"); err == nil {
		if _, err := LookupAccount(u.Username, 0); !errors.Is(err, api.ErrDenied) {
			t.Errorf("LookupAccount(nobody, uid %s) err = %v, want ErrDenied", u.Uid, err)
		}
	}
}

func TestLookupAccountMinUID(t *testing.T) {
	// daemon (uid 1 on Debian) or any UID below the limit is refused.
	if _, err := LookupAccount("1", 1000); !errors.Is(err, api.ErrDenied) {
		t.Errorf("LookupAccount(uid 1, min 1000) err = %v, want ErrDenied", err)
	}
}
