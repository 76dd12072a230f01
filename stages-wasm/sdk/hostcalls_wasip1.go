//go:build wasip1

package sdk

import (
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// The kiln_hostfs imports; docs/hostfs.md is their ABI. Go lowers each string
// parameter to a pointer and a length. Every one returns a WASI errno, which
// is Go's syscall.Errno on wasip1.

//go:wasmimport kiln_hostfs chmod
func hostChmod(path string, mode uint32) uint32

//go:wasmimport kiln_hostfs lchown
func hostLchown(path string, uid, gid int32) uint32

//go:wasmimport kiln_hostfs mknod
func hostMknod(path string, mode, major, minor uint32) uint32

//go:wasmimport kiln_hostfs setxattr
func hostSetxattr(path, name string, value unsafe.Pointer, valueLen uint32, flags uint32) uint32

//go:wasmimport kiln_hostfs getxattr
func hostGetxattr(path, name string, buf unsafe.Pointer, bufLen uint32, size *uint32) uint32

//go:wasmimport kiln_hostfs listxattr
func hostListxattr(path string, buf unsafe.Pointer, bufLen uint32, size *uint32) uint32

//go:wasmimport kiln_hostfs removexattr
func hostRemovexattr(path, name string) uint32

//go:wasmimport kiln_hostfs utimens
func hostUtimens(path string, atimeSec int64, atimeNsec uint32, mtimeSec int64, mtimeNsec uint32) uint32

//go:wasmimport kiln_hostfs lstat
func hostLstat(path string, st *kilnStat) uint32

//go:wasmimport kiln_hostfs eio_cause
func hostEIOCause(errno *uint32) uint32

func init() { eioCause = EIOCause }

// EIOCause returns the host error behind the latest EIO ("input/output
// error") a WASI file call of this stage returned, or 0 if there was none.
// wazero's WASI cannot pass ENOSPC, EDQUOT, EFBIG, EMLINK and others to a
// guest and says EIO instead; kiln_hostfs keeps the real errno. [Run] and
// [Dispatch] already use it to report a full disk as "no space left on
// device".
func EIOCause() syscall.Errno {
	var errno uint32
	if rc := hostEIOCause(&errno); rc != 0 {
		return 0
	}
	return syscall.Errno(errno)
}

// ENOATTR is the error for a missing extended attribute. WASI has no
// ENODATA, so kiln_hostfs reports it as ENOMSG; test with errors.Is.
const ENOATTR = syscall.ENOMSG

// Flags for SetXattr, as Linux numbers them.
const (
	XattrCreate  = 1 // fail with EEXIST if the attribute exists
	XattrReplace = 2 // fail with ENOATTR if it does not
)

// utimeOmit is UTIME_OMIT: keep that time.
const utimeOmit = 0x3ffffffe

// hostPath makes path absolute against the working directory, as os does on
// wasip1; the host resolves it inside the stage's tree.
func hostPath(path string) string {
	if strings.HasPrefix(path, "/") {
		return path
	}
	wd, err := os.Getwd()
	if err != nil {
		wd = "/"
	}
	return wd + "/" + path
}

func pathError(op, path string, rc uint32) error {
	if rc == 0 {
		return nil
	}
	return &fs.PathError{Op: op, Path: path, Err: syscall.Errno(rc)}
}

// Chmod sets the permission bits of path, with setuid, setgid and sticky;
// a final symlink is followed (inside the tree). Unlike os.Chmod on wasip1,
// which does nothing, this reaches the file. Call it after Lchown: a change
// of owner clears setuid and setgid.
func Chmod(path string, mode fs.FileMode) error {
	return pathError("chmod", path, hostChmod(hostPath(path), fsmeta.Perm(mode)))
}

// Lchown sets the owner and group of path itself, never following a
// symlink. An id of -1 is left unchanged.
func Lchown(path string, uid, gid int) error {
	return pathError("lchown", path, hostLchown(hostPath(path), int32(uid), int32(gid)))
}

// Mknod makes a node at path: a character device (mode has
// fs.ModeDevice|fs.ModeCharDevice), a block device (fs.ModeDevice), a FIFO
// (fs.ModeNamedPipe) or an empty file (no type bit), with exactly mode's
// permission bits, whatever the umask. Opening a device node through the
// filesystem is refused: stages make them for the image, not to use them.
func Mknod(path string, mode fs.FileMode, major, minor uint32) error {
	m, ok := fsmeta.NodeMode(mode)
	if !ok {
		return &fs.PathError{Op: "mknod", Path: path, Err: syscall.EINVAL}
	}
	return pathError("mknod", path, hostMknod(hostPath(path), m, major, minor))
}

// SetXattr sets the extended attribute name of path itself (lsetxattr).
// flags is 0, XattrCreate or XattrReplace.
func SetXattr(path, name string, value []byte, flags int) error {
	return pathError("setxattr", path,
		hostSetxattr(hostPath(path), name, unsafe.Pointer(unsafe.SliceData(value)), uint32(len(value)), uint32(flags)))
}

// GetXattr returns the value of the extended attribute name of path itself
// (lgetxattr). A missing attribute is an error matching ENOATTR.
func GetXattr(path, name string) ([]byte, error) {
	hp := hostPath(path)
	for {
		var size uint32
		if rc := hostGetxattr(hp, name, nil, 0, &size); rc != 0 {
			return nil, pathError("getxattr", path, rc)
		}
		buf := make([]byte, size)
		rc := hostGetxattr(hp, name, unsafe.Pointer(unsafe.SliceData(buf)), size, &size)
		if rc == uint32(syscall.ERANGE) {
			continue // the value grew between the two calls
		}
		if rc != 0 {
			return nil, pathError("getxattr", path, rc)
		}
		return buf[:size], nil
	}
}

// ListXattr returns the names of the extended attributes of path itself
// (llistxattr).
func ListXattr(path string) ([]string, error) {
	hp := hostPath(path)
	for {
		var size uint32
		if rc := hostListxattr(hp, nil, 0, &size); rc != 0 {
			return nil, pathError("listxattr", path, rc)
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		rc := hostListxattr(hp, unsafe.Pointer(unsafe.SliceData(buf)), size, &size)
		if rc == uint32(syscall.ERANGE) {
			continue
		}
		if rc != 0 {
			return nil, pathError("listxattr", path, rc)
		}
		return strings.Split(strings.TrimSuffix(string(buf[:size]), "\x00"), "\x00"), nil
	}
}

// RemoveXattr removes the extended attribute name of path itself.
func RemoveXattr(path, name string) error {
	return pathError("removexattr", path, hostRemovexattr(hostPath(path), name))
}

// Utimens sets the access and modification times of path itself, never
// following a symlink, to the nanosecond. A zero time.Time keeps that time.
func Utimens(path string, atime, mtime time.Time) error {
	as, an := timespec(atime)
	ms, mn := timespec(mtime)
	return pathError("utimens", path, hostUtimens(hostPath(path), as, an, ms, mn))
}

func timespec(t time.Time) (sec int64, nsec uint32) {
	if t.IsZero() {
		return 0, utimeOmit
	}
	return t.Unix(), uint32(t.Nanosecond())
}

// Lstat describes path itself, never following a symlink, with the mode,
// owner and device numbers that os.Lstat on wasip1 cannot report.
func Lstat(path string) (Stat, error) {
	var k kilnStat
	if rc := hostLstat(hostPath(path), &k); rc != 0 {
		return Stat{}, pathError("lstat", path, rc)
	}
	return k.stat(), nil
}
