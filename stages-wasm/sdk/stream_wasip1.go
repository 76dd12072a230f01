//go:build wasip1

package sdk

import (
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"unsafe"
)

//go:wasmimport kiln_hostfs stream_open
func hostStreamOpen(path string, offset, length int64, kind uint32, handle *uint32) uint32

//go:wasmimport kiln_hostfs stream_read
func hostStreamRead(handle uint32, buf unsafe.Pointer, bufLen uint32, size *uint32) uint32

//go:wasmimport kiln_hostfs stream_error
func hostStreamError(handle uint32, buf unsafe.Pointer, bufLen uint32, size *uint32) uint32

//go:wasmimport kiln_hostfs stream_close
func hostStreamClose(handle uint32) uint32

// OpenDecompressed reads the file at path (any mount; a final symlink is
// followed inside it) decompressed by the host, which runs native inflate,
// xz and zstd beside the stage instead of the same code in WebAssembly:
// several times faster, and on another core. Close it when done; the host
// closes what a stage leaves open when the stage ends.
//
// Corrupt or truncated data is an error matching [ErrBadData] that says
// what was wrong; other errors are the file's (fs.PathError).
func OpenDecompressed(path string, kind Compression) (io.ReadCloser, error) {
	return OpenDecompressedRange(path, 0, -1, kind)
}

// OpenDecompressedRange is [OpenDecompressed] of the n bytes of path from
// offset off (n = -1: to the end), e.g. a member of an ar archive such as a
// .deb's data.tar.xz. A range past the end of the file is EINVAL.
func OpenDecompressedRange(path string, off, n int64, kind Compression) (io.ReadCloser, error) {
	var h uint32
	if rc := hostStreamOpen(hostPath(path), off, n, uint32(kind), &h); rc != 0 {
		return nil, pathError("open", path, rc)
	}
	return &stream{path: path, h: h}, nil
}

type stream struct {
	path string
	h    uint32
	err  error // sticky: once a stream fails it stays failed
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n uint32
	rc := hostStreamRead(s.h, unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)), &n)
	switch {
	case rc == uint32(syscall.EBADMSG):
		s.err = fmt.Errorf("decompressing %s: %s: %w", s.path, s.message(), ErrBadData)
	case rc != 0:
		s.err = pathError("read", s.path, rc)
	case n == 0:
		s.err = io.EOF
	}
	if s.err != nil && n == 0 {
		return 0, s.err
	}
	return int(n), nil
}

// message asks the host what ended the stream.
func (s *stream) message() string {
	var size uint32
	if hostStreamError(s.h, nil, 0, &size) != 0 || size == 0 {
		return "bad data"
	}
	buf := make([]byte, size)
	if hostStreamError(s.h, unsafe.Pointer(unsafe.SliceData(buf)), size, &size) != 0 {
		return "bad data"
	}
	return string(buf[:size])
}

func (s *stream) Close() error {
	if s.h == 0 {
		return &fs.PathError{Op: "close", Path: s.path, Err: fs.ErrClosed}
	}
	rc := hostStreamClose(s.h)
	s.h, s.err = 0, fs.ErrClosed
	return pathError("close", s.path, rc)
}
