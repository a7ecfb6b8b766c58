package runtimes

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// POSIX ACL entries as the kernel stores them in system.posix_acl_access
// (linux/posix_acl_xattr.h): a version, then tag, permissions and id.
const (
	aclVersion   = 2
	aclUserObj   = 0x01
	aclUser      = 0x02
	aclGroupObj  = 0x04
	aclMask      = 0x10
	aclOther     = 0x20
	aclUndefined = 0xffffffff
	aclReadExec  = 4 | 1
)

// grantReadExec makes dir, root's, readable and searchable by uid alone
// (besides root) through an access ACL, mode 0550 with the mask: uid can
// list and read what is in it, but neither change dir nor its mode, so
// it cannot move the hard links it holds elsewhere.
func grantReadExec(dir string, uid uint32) error {
	entries := []struct {
		tag, perm uint16
		id        uint32
	}{
		{aclUserObj, aclReadExec, aclUndefined},
		{aclUser, aclReadExec, uid},
		{aclGroupObj, 0, aclUndefined},
		{aclMask, aclReadExec, aclUndefined},
		{aclOther, 0, aclUndefined},
	}
	buf := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		buf = binary.LittleEndian.AppendUint16(buf, e.tag)
		buf = binary.LittleEndian.AppendUint16(buf, e.perm)
		buf = binary.LittleEndian.AppendUint32(buf, e.id)
	}
	if err := unix.Setxattr(dir, "system.posix_acl_access", buf, 0); err != nil {
		return fmt.Errorf("grant uid %d read access to %s by ACL: %w", uid, dir, err)
	}
	return nil
}
