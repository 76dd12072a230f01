//go:build wasip1

package sdk

import (
	"errors"
	"io"
	"io/fs"
	"sync"
	"time"
	"unsafe"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

//go:wasmimport kiln_hostfs write_file
func hostWriteFile(path string, data unsafe.Pointer, dataLen uint32, mode uint32, uid, gid int32, mtimeSec int64, mtimeNsec uint32, flags uint32) uint32

// Flags of write_file (docs/hostfs.md).
const (
	writeReplace = 1
	writeAppend  = 2
)

// writeChunk is how much of a file one write_file call carries: a file up
// to this size is one host call.
const writeChunk = 1 << 20

var writeBufs = sync.Pool{New: func() any { b := make([]byte, writeChunk); return &b }}

// WriteFileFrom makes path a regular file holding what r reads, owned by
// uid:gid (-1 keeps that id: the stage's, root's), with exactly the
// permission bits of mode (setuid, setgid and sticky included) and mtime as
// its access and modification time (a zero mtime: the epoch, as any write
// leaves it). A non-directory already at path is replaced, as tar
// replaces it; a final symlink there is replaced, never followed.
//
// It is one host call for a file of up to 1 MiB, and one more per MiB
// beyond, where os.WriteFile with Lchown, Chmod and Utimens takes eight
// or more: the fast path for unpacking many files.
func WriteFileFrom(path string, r io.Reader, mode fs.FileMode, uid, gid int, mtime time.Time) error {
	bp := writeBufs.Get().(*[]byte)
	defer writeBufs.Put(bp)
	buf := *bp
	hp := hostPath(path)
	ms, mn := timespec(mtime)
	flags := uint32(writeReplace)
	for {
		n, err := io.ReadFull(r, buf)
		last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			return err
		}
		rc := hostWriteFile(hp, unsafe.Pointer(unsafe.SliceData(buf)), uint32(n),
			fsmeta.Perm(mode), int32(uid), int32(gid), ms, mn, flags)
		if rc != 0 {
			return pathError("write", path, rc)
		}
		if last {
			return nil
		}
		flags = writeAppend
	}
}
