package isolation

import (
	"errors"
	"fmt"
	"math"
	"os/user"
	"strconv"

	"fxd.dev/fxd/api"
)

// overflowUID is nobody: the UID of files from unmapped owners (NFS
// root squash, user namespaces). Code running as it could touch them all.
const overflowUID = 65534

// LookupAccount resolves a local account through NSS (files, LDAP, SSSD):
// name is a user name, or all digits for a UID. Root and nobody (65534)
// are always refused, and so is any UID below minUID.
func LookupAccount(name string, minUID uint32) (Account, error) {
	var u *user.User
	var err error
	if _, numErr := strconv.ParseUint(name, 10, 32); numErr == nil {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	var unknownName user.UnknownUserError
	var unknownID user.UnknownUserIdError
	if errors.As(err, &unknownName) || errors.As(err, &unknownID) {
		return Account{}, fmt.Errorf("account %q: no such local user; create it or fix the [[auth.map]] rule: %w", name, api.ErrDenied)
	}
	if err != nil {
		return Account{}, fmt.Errorf("look up account %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return Account{}, fmt.Errorf("account %q: non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
	}
	if err := checkUID(name, uint32(uid), minUID); err != nil {
		return Account{}, err
	}
	a := Account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	gids, err := u.GroupIds()
	if err != nil {
		return Account{}, fmt.Errorf("account %q: list groups: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != a.GID {
			a.Groups = append(a.Groups, uint32(n))
		}
	}
	return a, nil
}

// Env is the clean environment a process of the account starts with.
func (a Account) Env() []string {
	return []string{
		"HOME=" + a.Home, "USER=" + a.Name, "LOGNAME=" + a.Name,
		"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
	}
}

// checkUID refuses the UIDs no task may run as: root, nobody (the
// kernel's overflow user, shared by unmapped files and NFS) and those
// below minUID (system accounts).
func checkUID(name string, uid, minUID uint32) error {
	switch {
	case uid == 0:
		return fmt.Errorf("account %q: uid 0 is refused; map the identity to an unprivileged user in [[auth.map]]: %w", name, api.ErrDenied)
	case uid == overflowUID || uid == math.MaxUint32:
		return fmt.Errorf("account %q: uid %d is the kernel's overflow user (nobody), shared by unmapped files and NFS; map the identity to a regular user: %w", name, uid, api.ErrDenied)
	case uid < minUID:
		return fmt.Errorf("account %q: uid %d is below auth.min_uid (%d), which keeps system accounts out; map the identity to a regular user: %w", name, uid, minUID, api.ErrDenied)
	}
	return nil
}
