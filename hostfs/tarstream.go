package hostfs

import (
	"archive/tar"
	"context"
	"crypto/md5"
	"errors"
	"hash"
	"io"
	"sync"

	"github.com/kilnbuild/kiln/internal/tarrec"
	"golang.org/x/sys/unix"
)

// Tar streams (docs/hostfs.md, "Reading a tar archive in the host"): a
// stage that unpacks a tarball asks the host to parse the stream's tar
// headers (tar_next) and to write a member's data to the path the stage
// chose (tar_write). In WebAssembly, archive/tar's header parsing, its
// allocations and the guest's garbage collector cost about 170 µs a member,
// several times GNU tar's whole cost per file; natively it is a few. The
// host only parses: which members are unpacked, under which names, with
// which modes, owners and links is still the stage's decision, made through
// the same calls as any other write, and tar_write writes one regular file
// as write_file does.

// Flags of tar_write.
const (
	tarWriteMD5 = 1 // write the MD5 of the data, 16 bytes, at sum_ptr
)

// tarState is a stream read as a tar archive.
type tarState struct {
	in      *streamReader
	tr      *tar.Reader
	hdr     *tar.Header // the current member; nil before the first
	rec     []byte      // its record, as tar_next writes it
	given   bool        // the guest has had rec: the next tar_next moves on
	written bool        // tar_write took the current member's data
	end     bool        // the archive ended
	err     error       // why it failed; sticky
}

// streamReader is the stream as an io.Reader for archive/tar: the calling
// stage's context bounds each wait for the decompressor, and the stream's
// end is io.EOF.
type streamReader struct {
	s   *stream
	ctx context.Context
}

func (r *streamReader) Read(p []byte) (int, error) {
	n, err := r.s.read(r.ctx, p)
	if n == 0 && err == nil && len(p) > 0 {
		return 0, io.EOF
	}
	return n, err
}

// tarError is an archive that archive/tar cannot read: like bad compressed
// data, it is EBADMSG, and stream_error gives its text.
type tarError struct{ err error }

func (e tarError) Error() string { return "tar: " + e.err.Error() }
func (e tarError) Unwrap() error { return e.err }

// fail records err as what ended the tar stream and returns its errno.
func (t *tarState) fail(err error) uint32 {
	var errno unix.Errno
	var de dataError
	switch {
	case errors.As(err, &errno), errors.As(err, &de):
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		err = unix.EINTR
	default:
		err = tarError{err}
	}
	t.err = err
	return tarErrno(err)
}

func tarErrno(err error) uint32 {
	if errors.As(err, new(dataError)) || errors.As(err, new(tarError)) {
		return wasiErrno(unix.EBADMSG)
	}
	return wasiErrno(err)
}

// tarOf returns the tar state of stream s, making it on the first call; a
// stream already read as plain bytes is EINVAL, since what those reads took
// is gone from the archive.
func tarOf(c *call, s *stream) (*tarState, uint32) {
	if s.plain {
		return nil, wasiEINVAL
	}
	if s.tar == nil {
		in := &streamReader{s: s}
		s.tar = &tarState{in: in, tr: tar.NewReader(in)}
	}
	s.tar.in.ctx = c.ctx
	return s.tar, 0
}

// hostTarNext moves to the next member of the archive and writes its
// record, or a size of 0 at the end. A buffer too small for the record is
// ERANGE with the size written, and the same member is given again.
func hostTarNext(c *call) uint32 {
	s, errno := c.stream(0)
	if errno != 0 {
		return errno
	}
	t, errno := tarOf(c, s)
	if errno != 0 {
		return errno
	}
	buf, errno := c.bytes(1)
	if errno != 0 {
		return errno
	}
	if !c.mem.WriteUint32Le(c.u32(3), 0) {
		return wasiEFAULT
	}
	if t.err != nil {
		return tarErrno(t.err)
	}
	if t.end {
		return wasiESUCCESS
	}
	if t.hdr == nil || t.given {
		hdr, err := t.tr.Next()
		if errors.Is(err, io.EOF) {
			t.end, t.hdr, t.rec = true, nil, nil
			return wasiESUCCESS
		}
		if err != nil {
			return t.fail(err)
		}
		rec, err := tarrec.Append(t.rec[:0], hdr)
		if err != nil {
			return t.fail(err)
		}
		t.hdr, t.rec, t.given, t.written = hdr, rec, false, false
	}
	if len(buf) < len(t.rec) {
		if errno := c.writeU32(3, uint32(len(t.rec))); errno != 0 {
			return errno
		}
		return wasiErrno(unix.ERANGE)
	}
	copy(buf, t.rec)
	t.given = true
	return c.writeU32(3, uint32(len(t.rec)))
}

// tarCopyBufs are the buffers tar_write moves data through: 1 MiB, one
// write(2) for most files of an OS tree.
var tarCopyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// hostTarWrite writes the current member's data as a new regular file at
// the path, as write_file with REPLACE does: owner, mode and both times set
// once the data is in.
func hostTarWrite(c *call) uint32 {
	s, errno := c.stream(0)
	if errno != 0 {
		return errno
	}
	t, errno := tarOf(c, s)
	if errno != 0 {
		return errno
	}
	root, rel, errno := c.writable(1)
	if errno != 0 {
		return errno
	}
	mode, uid, gid := c.u32(3), c.id(4), c.id(5)
	sec, nsec := int64(c.stack[6]), int64(c.u32(7))
	flags, sumPtr := c.u32(8), c.u32(9)
	if mode&^0o7777 != 0 || flags&^tarWriteMD5 != 0 {
		return wasiEINVAL
	}
	if nsec != unix.UTIME_OMIT && nsec >= 1e9 {
		return wasiEINVAL // UTIME_NOW would stamp the host's clock into the image
	}
	if t.err != nil {
		return tarErrno(t.err)
	}
	if !t.given || t.written || !hasData(t.hdr.Typeflag) {
		return wasiEINVAL // no member given, its data taken, or none to take
	}
	var sum hash.Hash
	if flags&tarWriteMD5 != 0 {
		// Checked before the data is taken: a bad pointer must not cost
		// the member.
		if _, ok := c.mem.Read(sumPtr, md5.Size); !ok {
			return wasiEFAULT
		}
		sum = md5.New()
	}
	var readErr error
	src := &tarData{ctx: c.ctx, r: t.tr, sum: sum, err: &readErr}
	err := root.writeFileWith(rel, writeReplace, unix.Timespec{Sec: sec, Nsec: nsec}, func(fd int) error {
		if err := src.copyTo(fd); err != nil {
			return err
		}
		return root.finishFile(fd, mode, uid, gid, unix.Timespec{Sec: sec, Nsec: nsec})
	})
	// A call that failed before the file was made (a bad path, a
	// read-only mount) leaves the member's data for another try; once
	// the data is being taken it is gone, whatever happens.
	t.written = src.started
	if readErr != nil {
		return t.fail(readErr)
	}
	if err != nil {
		return wasiErrno(err)
	}
	if sum != nil && !c.mem.Write(sumPtr, sum.Sum(nil)) {
		return wasiEFAULT
	}
	return wasiESUCCESS
}

// hasData reports whether a member of type flag is one tar_write takes:
// a regular file (archive/tar reads a GNU sparse one expanded).
func hasData(flag byte) bool {
	return flag == tar.TypeReg || flag == tar.TypeGNUSparse
}

// tarData copies a member's data to a file, checking the context between
// writes; an error of the archive is kept apart in err, since it ends the
// tar stream where a write error does not.
type tarData struct {
	ctx     context.Context
	r       io.Reader
	sum     hash.Hash
	err     *error
	started bool
}

func (d *tarData) copyTo(fd int) error {
	d.started = true
	bp := tarCopyBufs.Get().(*[]byte)
	defer tarCopyBufs.Put(bp)
	buf := *bp
	for {
		if err := d.ctx.Err(); err != nil {
			*d.err = err
			return err
		}
		// Fill the buffer, so that a small file is one write.
		n := 0
		var rerr error
		for n < len(buf) && rerr == nil {
			var k int
			k, rerr = d.r.Read(buf[n:])
			n += k
		}
		if n > 0 {
			if d.sum != nil {
				d.sum.Write(buf[:n])
			}
			if err := writeAll(fd, buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			*d.err = rerr
			return rerr
		}
	}
}
