package boltfile

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockHolder names the process that holds the flock on path, as
// " (pid N)", from /proc/locks; "" if it cannot tell.
func lockHolder(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return ""
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	ino := fmt.Sprintf(":%d", st.Ino)
	byInode := "" // overlay filesystems may show another device number
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			continue
		}
		switch {
		case strings.EqualFold(fields[5], want):
			return fmt.Sprintf(" (pid %d)", pid)
		case byInode == "" && strings.HasSuffix(fields[5], ino):
			byInode = fmt.Sprintf(" (pid %d)", pid)
		}
	}
	return byInode
}
