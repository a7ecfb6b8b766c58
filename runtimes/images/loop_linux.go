package images

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
)

// loopTries is how often attachLoop takes a new free device when another
// process bound the one it was given first. LOOP_CTL_GET_FREE hands the
// same device to every caller until one binds it, so with n concurrent
// attaches (here or in other processes) the last may lose n-1 rounds;
// util-linux's losetup gives up after 64 as well.
const loopTries = 64

// loopBackoff is the longest pause between two tries; the pause grows
// by a millisecond a try, with jitter so that losers do not race again
// in step.
const loopBackoff = 20 * time.Millisecond

// loopMajor is the block device major number of loop devices.
const loopMajor = 7

// attachLoop binds a free loop device, read-only and autoclear, to bytes
// off to off+size of the file at path, with ioctls (no losetup), and
// returns the device open read-only. The caller mounts it and then closes
// it: the kernel frees an autoclear device when its last user goes, the
// mount if it succeeded, our descriptor otherwise. On a failed mount call
// detachLoop.
func attachLoop(path string, off, size int64) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image blob: %w", err)
	}
	defer f.Close() // the device keeps its own reference
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no /dev/loop-control; load the loop module: modprobe loop", api.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open loop control: %w", err)
	}
	defer ctl.Close()
	info := unix.LoopInfo64{Offset: uint64(off), Sizelimit: uint64(size), Flags: unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR}
	copy(info.File_name[:len(info.File_name)-1], path) // for losetup -l
	for try := 1; ; try++ {
		dev, err := freeLoop(ctl)
		if err != nil {
			return nil, err
		}
		err = configureLoop(dev, f, &info)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) || try == loopTries {
			return nil, fmt.Errorf("set up loop device %s (try %d): %w", dev.Name(), try, err)
		}
		pause := min(time.Duration(try)*time.Millisecond, loopBackoff)
		time.Sleep(pause/2 + rand.N(pause/2+1))
	}
}

// freeLoop asks the kernel for a free loop device and opens it read-only,
// making its device node when /dev lacks it (a container's static /dev).
func freeLoop(ctl *os.File) (*os.File, error) {
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return nil, fmt.Errorf("find a free loop device: %w", err)
	}
	name := fmt.Sprintf("/dev/loop%d", n)
	dev, err := os.OpenFile(name, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		err = unix.Mknod(name, unix.S_IFBLK|0o660, int(unix.Mkdev(loopMajor, uint32(n))))
		if err == nil || errors.Is(err, fs.ErrExist) {
			dev, err = os.OpenFile(name, os.O_RDONLY, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open loop device: %w", err)
	}
	return dev, nil
}

// configureLoop binds dev to f as info says: with LOOP_CONFIGURE in one
// step (Linux 5.8 and later), else with LOOP_SET_FD and LOOP_SET_STATUS64.
// The device is read-only either way: f and dev are opened read-only.
func configureLoop(dev, f *os.File, info *unix.LoopInfo64) error {
	cfg := unix.LoopConfig{Fd: uint32(f.Fd()), Info: *info}
	err := unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return err
	}
	if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(f.Fd())); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(int(dev.Fd()), info); err != nil {
		unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// detachLoop unbinds and closes a device attachLoop returned whose mount
// failed, so that no device is left bound.
func detachLoop(dev *os.File) {
	unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
	dev.Close()
}
