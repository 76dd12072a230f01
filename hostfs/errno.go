package hostfs

import (
	"errors"
	"sync/atomic"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// eioRecord is the host error behind an EIO the filesystem gave a guest.
type eioRecord struct {
	seq   uint64 // orders records across the roots of a stage
	errno uint32 // WASI errno
}

var eioSeq atomic.Uint64

// sysErrno is the package's sysErrno for an operation on r, which also
// records the real host error when the guest is told EIO: wazero's Errno,
// and so the WASI filesystem, cannot say ENOSPC, EDQUOT, EFBIG, EMLINK and
// many more, and passes each of them to the guest as EIO (its ToErrno). The
// kiln_hostfs call eio_cause hands the recorded errno to the guest, whose SDK
// then reports "no space left on device" rather than "I/O error".
func (r *Root) sysErrno(err error) experimentalsys.Errno {
	e := sysErrno(err)
	if e == experimentalsys.EIO {
		r.lastEIO.Store(&eioRecord{seq: eioSeq.Add(1), errno: wasiErrno(err)})
	}
	return e
}

// eioCause returns the WASI errno behind the latest EIO the filesystems of
// table gave the guest, 0 if none did.
func (t mountTable) eioCause() uint32 {
	var latest *eioRecord
	for _, m := range t {
		if rec := m.Root.lastEIO.Load(); rec != nil && (latest == nil || rec.seq > latest.seq) {
			latest = rec
		}
	}
	if latest == nil {
		return 0
	}
	return latest.errno
}

// sysErrno maps an error from the operations to wazero's Errno, the numbering
// of the FS interface. wazero's set is small: what it lacks becomes EIO
// (see Root.sysErrno for how the guest learns the real error).
func sysErrno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return experimentalsys.EIO
	}
	switch errno {
	case unix.EBUSY:
		// Renaming or removing the root: wazero has no EBUSY, and EPERM
		// tells the guest the same thing, that it may not.
		return experimentalsys.EPERM
	case unix.EXDEV:
		return experimentalsys.EPERM
	}
	return experimentalsys.UnwrapOSError(errno)
}

// WASI preview1 errno numbers used by name in this package.
const (
	wasiESUCCESS     uint32 = 0
	wasiEFAULT       uint32 = 21
	wasiEINVAL       uint32 = 28
	wasiEIO          uint32 = 29
	wasiENAMETOOLONG uint32 = 37
	wasiENOENT       uint32 = 44
	wasiENOMSG       uint32 = 49
	wasiENOSPC       uint32 = 51
	wasiEROFS        uint32 = 69
	wasiENOTCAPABLE  uint32 = 76
)

// wasiErrnos maps Linux errnos to WASI preview1's numbering, which is the
// syscall.Errno of a Go wasip1 guest and errno in wasi-libc.
var wasiErrnos = map[unix.Errno]uint32{
	unix.E2BIG: 1, unix.EACCES: 2, unix.EADDRINUSE: 3, unix.EADDRNOTAVAIL: 4,
	unix.EAFNOSUPPORT: 5, unix.EAGAIN: 6, unix.EALREADY: 7, unix.EBADF: 8,
	unix.EBADMSG: 9, unix.EBUSY: 10, unix.ECANCELED: 11, unix.ECHILD: 12,
	unix.ECONNABORTED: 13, unix.ECONNREFUSED: 14, unix.ECONNRESET: 15,
	unix.EDEADLK: 16, unix.EDESTADDRREQ: 17, unix.EDOM: 18, unix.EDQUOT: 19,
	unix.EEXIST: 20, unix.EFAULT: wasiEFAULT, unix.EFBIG: 22, unix.EHOSTUNREACH: 23,
	unix.EIDRM: 24, unix.EILSEQ: 25, unix.EINPROGRESS: 26, unix.EINTR: 27,
	unix.EINVAL: wasiEINVAL, unix.EIO: wasiEIO, unix.EISCONN: 30, unix.EISDIR: 31,
	unix.ELOOP: 32, unix.EMFILE: 33, unix.EMLINK: 34, unix.EMSGSIZE: 35,
	unix.EMULTIHOP: 36, unix.ENAMETOOLONG: wasiENAMETOOLONG, unix.ENETDOWN: 38,
	unix.ENETRESET: 39, unix.ENETUNREACH: 40, unix.ENFILE: 41, unix.ENOBUFS: 42,
	unix.ENODEV: 43, unix.ENOENT: wasiENOENT, unix.ENOEXEC: 45, unix.ENOLCK: 46,
	unix.ENOLINK: 47, unix.ENOMEM: 48, unix.ENOMSG: wasiENOMSG, unix.ENOPROTOOPT: 50,
	unix.ENOSPC: wasiENOSPC, unix.ENOSYS: 52, unix.ENOTCONN: 53, unix.ENOTDIR: 54,
	unix.ENOTEMPTY: 55, unix.ENOTRECOVERABLE: 56, unix.ENOTSOCK: 57,
	unix.ENOTSUP: 58, unix.ENOTTY: 59, unix.ENXIO: 60, unix.EOVERFLOW: 61,
	unix.EOWNERDEAD: 62, unix.EPERM: 63, unix.EPIPE: 64, unix.EPROTO: 65,
	unix.EPROTONOSUPPORT: 66, unix.EPROTOTYPE: 67, unix.ERANGE: 68,
	unix.EROFS: wasiEROFS, unix.ESPIPE: 70, unix.ESRCH: 71, unix.ESTALE: 72,
	unix.ETIMEDOUT: 73, unix.ETXTBSY: 74, unix.EXDEV: 75,
	// WASI has no ENODATA ("no such attribute"); ENOMSG is the documented
	// stand-in, see docs/hostfs.md.
	unix.ENODATA: wasiENOMSG,
}

// wasiErrno maps an error from the operations to a WASI errno number.
func wasiErrno(err error) uint32 {
	if err == nil {
		return wasiESUCCESS
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return wasiEIO
	}
	if n, ok := wasiErrnos[errno]; ok {
		return n
	}
	return wasiEIO
}
