//go:build wasip1

package sdk

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"time"
	"unsafe"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/internal/tarrec"
)

//go:wasmimport kiln_hostfs tar_next
func hostTarNext(handle uint32, buf unsafe.Pointer, bufLen uint32, size *uint32) uint32

//go:wasmimport kiln_hostfs tar_write
func hostTarWrite(handle uint32, path string, mode uint32, uid, gid int32, mtimeSec int64, mtimeNsec uint32, flags uint32, sum unsafe.Pointer) uint32

// TarReader reads a tar archive that the host parses and decompresses
// (kiln_hostfs tar_next and tar_write): archive/tar's header parsing, run
// in WebAssembly, cost a tree of small files several times GNU tar's whole
// time. The stage still decides what each member becomes: Next only
// describes a member, and WriteFile writes its data where, and with the
// owner and mode, the stage says.
type TarReader struct {
	s   *stream
	buf []byte
}

// OpenTar reads the file at path (any mount; a final symlink is followed
// inside it), decompressed as [OpenDecompressed] does, as a tar archive.
func OpenTar(path string, kind Compression) (*TarReader, error) {
	return OpenTarRange(path, 0, -1, kind)
}

// OpenTarRange is [OpenTar] of the n bytes of path from offset off (n = -1:
// to the end), e.g. a .deb's data.tar.xz.
func OpenTarRange(path string, off, n int64, kind Compression) (*TarReader, error) {
	r, err := OpenDecompressedRange(path, off, n, kind)
	if err != nil {
		return nil, err
	}
	return &TarReader{s: r.(*stream), buf: make([]byte, 64<<10)}, nil
}

// Close ends the stream; the host closes what a stage leaves open.
func (t *TarReader) Close() error { return t.s.Close() }

// Next moves to the next member and describes it: type, names, size, mode,
// owner, mtime, device numbers, and of the PAX records only the
// "SCHILY.xattr." ones. The end
// of the archive is io.EOF; an archive the host cannot read is an error
// matching [ErrBadData] that says why.
func (t *TarReader) Next() (*tar.Header, error) {
	for {
		var n uint32
		rc := hostTarNext(t.s.h, unsafe.Pointer(unsafe.SliceData(t.buf)), uint32(len(t.buf)), &n)
		if rc == uint32(syscall.ERANGE) && int(n) > len(t.buf) {
			t.buf = make([]byte, n)
			continue
		}
		if rc != 0 {
			return nil, t.err("read", rc)
		}
		if n == 0 {
			return nil, io.EOF
		}
		h, err := tarrec.Decode(t.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", t.s.path, err)
		}
		return h, nil
	}
}

// WriteFile writes the current member's data, a regular file, at path,
// replacing a non-directory there (never through a final symlink), owned
// by uid:gid (-1 keeps that id) with exactly mode's permission bits and
// mtime as both times: one host call, whatever the file's size. If sum is
// not nil it receives the MD5 of the data (what dpkg records).
func (t *TarReader) WriteFile(path string, mode fs.FileMode, uid, gid int, mtime time.Time, sum *[16]byte) error {
	ms, mn := timespec(mtime)
	var flags uint32
	var sp unsafe.Pointer
	if sum != nil {
		flags, sp = 1, unsafe.Pointer(sum)
	}
	rc := hostTarWrite(t.s.h, hostPath(path), fsmeta.Perm(mode), int32(uid), int32(gid), ms, mn, flags, sp)
	if rc == uint32(syscall.EBADMSG) {
		return t.err("read", rc)
	}
	return pathError("write", path, rc)
}

// err is the error of a failed call: EBADMSG with the host's reason.
func (t *TarReader) err(op string, rc uint32) error {
	if rc == uint32(syscall.EBADMSG) {
		return fmt.Errorf("reading %s: %s: %w", t.s.path, t.s.message(), ErrBadData)
	}
	return pathError(op, t.s.path, rc)
}
