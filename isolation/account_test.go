package isolation

import (
	"errors"
	"os/user"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
)

func TestCheckUID(t *testing.T) {
	for _, tc := range []struct {
		uid, minUID uint32
		why         string // "" = allowed
	}{
		{0, 0, "uid 0 is refused"},
		{65534, 0, "overflow user"},
		{4294967295, 0, "overflow user"},
		{999, 1000, "below auth.min_uid"},
		{1000, 1000, ""},
		{65533, 1000, ""},
	} {
		err := checkUID("x", tc.uid, tc.minUID)
		switch {
		case tc.why == "" && err != nil:
			t.Errorf("checkUID(%d, min %d) = %v, want allowed", tc.uid, tc.minUID, err)
		case tc.why != "" && (!errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), tc.why)):
			t.Errorf("checkUID(%d, min %d) = %v, want denied: %s", tc.uid, tc.minUID, err, tc.why)
		}
	}
}

// LookupAccount applies checkUID to what NSS returns.
func TestLookupAccountRefusesRoot(t *testing.T) {
	for _, name := range []string{"root", "0"} {
		if _, err := LookupAccount(name, 0); !errors.Is(err, api.ErrDenied) || !strings.Contains(err.Error(), "uid 0 is refused") {
			t.Errorf("LookupAccount(%q) err = %v, want uid 0 refused", name, err)
		}
	}
	if u, err := user.Lookup("nobody"); err == nil && u.Uid == "65534" {
		if _, err := LookupAccount("nobody", 0); err == nil || !strings.Contains(err.Error(), "overflow user") {
			t.Errorf("LookupAccount(nobody) err = %v, want the overflow user refused", err)
		}
	}
}
