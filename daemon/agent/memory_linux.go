package agent

import "golang.org/x/sys/unix"

// Memory is the node's physical memory in bytes, for its hello; 0 when
// it cannot be read.
func Memory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
