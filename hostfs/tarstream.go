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

// Parsing ahead: a goroutine of the stream reads the members with
// archive/tar, and the data of the small ones, ahead of the stage, so that
// parsing, the reads and the copies out of the decompressor's chunks run
// on another core while the stage decides and the host writes, as GNU
// tar's reads do not. What the stage sees is the same as parsing in the
// call; only the host memory it holds grows, bounded by these.
const (
	// tarAheadSize is the largest member whose data is read ahead; a
	// larger one is read by tar_write itself, straight from the archive,
	// while the parser waits.
	tarAheadSize = 64 << 10
	// tarAhead is how many members are parsed ahead: with tarAheadSize, at
	// most 2 MiB of data a stream.
	tarAhead = 32
)

// tarState is a stream read as a tar archive.
type tarState struct {
	in     *streamReader
	tr     *tar.Reader
	items  chan *tarItem // parsed members, in order; closed after the last
	resume chan struct{} // a direct member's data is done with: parse on
	parsed chan struct{} // closed when the parser has returned

	cur     *tarItem // the current member; nil before the first
	given   bool     // the guest has had its record: the next tar_next moves on
	written bool     // tar_write took the current member's data
	end     bool     // the archive ended
	err     error    // why it failed; sticky
}

// tarItem is one member as the parser hands it over.
type tarItem struct {
	hdr *tar.Header
	rec []byte // its record, as tar_next writes it
	// data is a small member's whole data, read ahead; direct says the
	// data is still in the archive, for tar_write to read while the
	// parser waits on resume.
	data   []byte
	buf    *[]byte // data's buffer, from tarAheadBufs
	direct bool
	// err ends the archive after this item, or instead of a member when
	// hdr is nil: io.EOF at its end, else why it cannot be read.
	err error
}

// tarAheadBufs hold the data read ahead: reused, since a fresh buffer a
// member made a GB-sized tree a GB of garbage, whose zeroing and
// collection cost more than the copy.
var tarAheadBufs = sync.Pool{New: func() any { b := make([]byte, tarAheadSize); return &b }}

// release gives the item's data buffer back, once.
func (it *tarItem) release() {
	if it.buf != nil {
		tarAheadBufs.Put(it.buf)
		it.buf, it.data = nil, nil
	}
}

// streamReader is the stream as an io.Reader for archive/tar: ctx bounds
// each wait for the decompressor (the stage's, while tar_write reads a
// direct member; none while the parser reads, which the stream's close
// stops), and the stream's end is io.EOF.
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

// parse is the parser goroutine: it hands over each member, and after a
// direct one waits until its data is done with.
func (t *tarState) parse(done <-chan struct{}) {
	defer close(t.parsed)
	defer close(t.items)
	send := func(it *tarItem) bool {
		select {
		case t.items <- it:
			return true
		case <-done:
			return false
		}
	}
	for {
		t.in.ctx = context.Background()
		hdr, err := t.tr.Next()
		if err != nil {
			send(&tarItem{err: err})
			return
		}
		rec, err := tarrec.Append(nil, hdr)
		if err != nil {
			send(&tarItem{err: err})
			return
		}
		it := &tarItem{hdr: hdr, rec: rec}
		if hasData(hdr.Typeflag) {
			if hdr.Size <= tarAheadSize {
				it.buf = tarAheadBufs.Get().(*[]byte)
				it.data = (*it.buf)[:hdr.Size]
				if _, err := io.ReadFull(t.tr, it.data); err != nil {
					if errors.Is(err, io.EOF) {
						err = io.ErrUnexpectedEOF // the data is shorter than the header says
					}
					it.release()
					it.err = err
				}
			} else {
				it.direct = true
			}
		}
		if !send(it) || it.err != nil {
			return
		}
		if it.direct {
			select {
			case <-t.resume:
			case <-done:
				return
			}
		}
	}
}

// next makes the following member current, first letting the parser go on
// past a direct one.
func (t *tarState) next(ctx context.Context) error {
	if t.cur != nil {
		if t.cur.err != nil {
			return t.cur.err
		}
		t.cur.release()
		if t.cur.direct {
			t.resume <- struct{}{} // the parser waits for exactly this
		}
	}
	select {
	case it, ok := <-t.items:
		if !ok {
			return io.EOF // not reached: the last item carries the reason
		}
		if it.hdr == nil {
			return it.err
		}
		t.cur, t.given, t.written = it, false, false
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

// tarOf returns the tar state of stream s, starting its parser on the
// first call; a stream already read as plain bytes is EINVAL, since what
// those reads took is gone from the archive.
func tarOf(s *stream) (*tarState, uint32) {
	if s.plain {
		return nil, wasiEINVAL
	}
	if s.tar == nil {
		in := &streamReader{s: s, ctx: context.Background()}
		s.tar = &tarState{
			in: in, tr: tar.NewReader(in),
			items:  make(chan *tarItem, tarAhead),
			resume: make(chan struct{}),
			parsed: make(chan struct{}),
		}
		go s.tar.parse(s.done)
	}
	return s.tar, 0
}

// tarStream is the tar state of the stream whose handle is argument i.
func (c *call) tarStream(i int) (*tarState, uint32) {
	s, errno := c.stream(i)
	if errno != 0 {
		return nil, errno
	}
	return tarOf(s)
}

// hostTarNext moves to the next member of the archive and writes its
// record, or a size of 0 at the end. A buffer too small for the record is
// ERANGE with the size written, and the same member is given again.
func hostTarNext(c *call) uint32 {
	t, errno := c.tarStream(0)
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
	if t.cur == nil || t.given {
		if err := t.next(c.ctx); err != nil {
			if errors.Is(err, io.EOF) {
				t.end = true
				return wasiESUCCESS
			}
			return t.fail(err)
		}
	}
	rec := t.cur.rec
	if len(buf) < len(rec) {
		if errno := c.writeU32(3, uint32(len(rec))); errno != 0 {
			return errno
		}
		return wasiErrno(unix.ERANGE)
	}
	copy(buf, rec)
	t.given = true
	return c.writeU32(3, uint32(len(rec)))
}

// errReader is a member whose data the parser could not read: tar_write
// reports it once it has made the file, as it would have found it reading.
type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// tarCopyBufs are the buffers tar_write moves data through: 1 MiB, one
// write(2) for most files of an OS tree.
var tarCopyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// hostTarWrite writes the current member's data as a new regular file at
// the path, as write_file with REPLACE does: owner, mode and both times set
// once the data is in.
func hostTarWrite(c *call) uint32 {
	t, errno := c.tarStream(0)
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
	if !t.given || t.written || !hasData(t.cur.hdr.Typeflag) {
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
	src := &tarData{ctx: c.ctx, sum: sum, err: &readErr}
	switch it := t.cur; {
	case it.direct:
		// The parser waits on resume: the archive is this call's to read.
		t.in.ctx = c.ctx
		src.r = t.tr
	case it.err != nil:
		src.r = &errReader{it.err}
	default:
		src.whole = it.data
	}
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
	if t.written {
		t.cur.release()
	}
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
	r       io.Reader // the data, or
	whole   []byte    // all of it, read ahead
	sum     hash.Hash
	err     *error
	started bool
}

func (d *tarData) copyTo(fd int) error {
	d.started = true
	if d.r == nil {
		if d.sum != nil {
			d.sum.Write(d.whole)
		}
		return writeAll(fd, d.whole)
	}
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
