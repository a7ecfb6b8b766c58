//go:build !linux

package boltfile

// lockHolder cannot name the holder of a lock on this system.
func lockHolder(path string) string { return "" }
