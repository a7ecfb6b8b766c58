// Package units writes quantities for people, the same way in the daemon's
// messages and the CLI's tables.
package units

import (
	"strconv"
	"strings"
)

// Bytes writes a byte count in binary units: "512 B", "64 MiB", "1.5 GiB".
func Bytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v, u = v/1024, u+1
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + " " + units[u]
}
