package sif

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// image is a SIF file opened read-only and checked, as sif/v2 sees it.
type image struct {
	f       *os.File
	size    int64
	r       *reader
	fi      *sif.FileImage
	objects []Object
	// root is the primary system partition, and rootFS its file system,
	// when nroot (their count) is 1.
	root   Object
	rootFS sif.FSType
	nroot  int
}

// open opens and checks the SIF image at path: header, descriptor bounds,
// and one primary system partition. The caller closes it.
func open(ctx context.Context, path string) (*image, error) {
	// O_NONBLOCK: opening a FIFO planted at path must not hang the caller.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the caller names the path
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: it is %s, not a regular file; give the path of a .sif file", ErrNotSIF, fileKind(st.Mode()))
	}
	im := &image{f: f, size: st.Size(), r: &reader{done: ctx.Err, r: f}}
	if err := im.load(); err != nil {
		f.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return im, nil
}

func (im *image) close() error { return im.f.Close() }

// fileKind names the type of a file that is not regular, for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// load checks the header, loads it with sif/v2, checks every descriptor
// and finds the primary system partitions.
func (im *image) load() error {
	if err := checkHeader(im.r, im.size); err != nil {
		return err
	}
	fi, err := sif.LoadContainer(im.r, sif.OptLoadWithCloseOnUnload(false))
	if err != nil {
		return fmt.Errorf("%w: %v; rebuild the image", ErrMalformed, err)
	}
	im.fi = fi
	descOff := fi.DescriptorsOffset()
	descEnd := descOff + fi.DescriptorsSize() // checked by checkHeader
	fi.WithDescriptors(func(d sif.Descriptor) bool {
		if err = checkObject(d, descOff, descEnd, im.size); err != nil {
			return true
		}
		o, fs, pt := summarize(d)
		if pt == sif.PartPrimSys {
			im.root, im.rootFS = o, fs
			im.nroot++
		}
		im.objects = append(im.objects, o)
		return false
	})
	return err
}

// checkObject checks that the data of d lies in the file, after the header
// and outside the descriptor table [descOff, descEnd).
func checkObject(d sif.Descriptor, descOff, descEnd, size int64) error {
	off, n := d.Offset(), d.Size()
	switch {
	case off < 0 || n < 0:
		return fmt.Errorf("%w: object %d (%s) at %d has size %d; the descriptor is corrupt, rebuild the image", ErrMalformed, d.ID(), d.DataType(), off, n)
	case !within(off, n, size):
		return fmt.Errorf("%w: object %d (%s) ends at byte %d, past the end of the %d-byte file; copy the image again", ErrTruncated, d.ID(), d.DataType(), end(off, n), size)
	case n > 0 && (off < headerSize || (off < descEnd && off+n > descOff)):
		return fmt.Errorf("%w: object %d (%s) at %d overlaps the SIF header or descriptors; rebuild the image", ErrMalformed, d.ID(), d.DataType(), off)
	}
	return nil
}

// rootfs returns the one primary system partition of the image.
func (im *image) rootfs() (Object, error) {
	switch im.nroot {
	case 0:
		return Object{}, fmt.Errorf("%w: no primary system partition among its objects (%s); build the image with apptainer build or singularity build, which makes one", ErrNoRootfs, describe(im.objects))
	case 1:
		return im.root, nil
	}
	return Object{}, fmt.Errorf("%w: %d primary system partitions (%s); keep one (siftool setprim)", ErrMalformed, im.nroot, describe(im.objects))
}

// reader is the image as sif/v2 reads it: reads fail once done returns an
// error (the calling ctx's Err, so verifying gigabytes stops on
// cancel), and the writes that sif.ReadWriter also asks for are refused.
type reader struct {
	done func() error
	r    io.ReaderAt
}

var errReadOnly = errors.New("SIF image is opened read-only")

func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.done(); err != nil {
		return 0, err
	}
	return r.r.ReadAt(p, off)
}

func (r *reader) Write([]byte) (int, error)      { return 0, errReadOnly }
func (r *reader) Seek(int64, int) (int64, error) { return 0, errReadOnly }
func (r *reader) Truncate(int64) error           { return errReadOnly }

var _ sif.ReadWriter = (*reader)(nil)
