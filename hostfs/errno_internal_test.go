package hostfs

import (
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// TestWASIErrnos pins the host errors of issue 10 item 15 to their WASI
// preview1 numbers: kiln_hostfs returns them as they are, and eio_cause
// reports them behind the WASI filesystem's EIO.
func TestWASIErrnos(t *testing.T) {
	for _, c := range []struct {
		errno unix.Errno
		wasi  uint32
	}{
		{unix.ENOSPC, 51}, {unix.EDQUOT, 19}, {unix.EROFS, 69}, {unix.EFBIG, 22},
		{unix.EMLINK, 34}, {unix.ENAMETOOLONG, 37}, {unix.ELOOP, 32}, {unix.ETXTBSY, 74},
		{unix.EMFILE, 33}, {unix.ENFILE, 41}, {unix.ENOMEM, 48}, {unix.EOVERFLOW, 61},
		{unix.EXDEV, 75}, {unix.EBUSY, 10}, {unix.EIO, 29}, {unix.ENODATA, 49},
		{unix.EHWPOISON, 29}, // no WASI number: EIO
	} {
		if got := wasiErrno(c.errno); got != c.wasi {
			t.Errorf("wasiErrno(%v) = %d, want %d", c.errno, got, c.wasi)
		}
	}
}

// TestEIOCause: the WASI filesystem can only say EIO for ENOSPC and the
// like; the root keeps the real errno, and a stage's mount table reports the
// latest across its roots.
func TestEIOCause(t *testing.T) {
	a, err := OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	table := mountTable(checkMounts([]Mount{{GuestPath: "/", Root: a}, {GuestPath: "/run/kiln/build", Root: b, ReadOnly: true}}))
	if got := table.eioCause(); got != 0 {
		t.Fatalf("cause before any EIO = %d", got)
	}
	for _, step := range []struct {
		root  *Root
		err   error
		errno experimentalsys.Errno
		cause uint32
	}{
		{a, unix.ENOSPC, experimentalsys.EIO, 51},
		{a, unix.ENOENT, experimentalsys.ENOENT, 51}, // not an EIO: the cause stays
		{b, unix.EMLINK, experimentalsys.EIO, 34},    // the latest of all roots
		{a, unix.EDQUOT, experimentalsys.EIO, 19},
		{b, unix.EIO, experimentalsys.EIO, 29}, // a real I/O error is its own cause
	} {
		if got := step.root.sysErrno(step.err); got != step.errno {
			t.Errorf("sysErrno(%v) = %v, want %v", step.err, got, step.errno)
		}
		if got := table.eioCause(); got != step.cause {
			t.Errorf("after %v: cause %d, want %d", step.err, got, step.cause)
		}
	}
}
