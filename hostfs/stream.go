package hostfs

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Decompressed streams (docs/hostfs.md, "Decompressing in the host"): a
// stage names a file, or a byte range of one, and reads it decompressed,
// with the host's native inflate, xz and zstd instead of the same code
// compiled to WebAssembly (single-threaded and several times slower). A
// goroutine per stream decompresses ahead of the guest, so that, as with
// "gzip -d | tar -x", decompressing and writing the tree share the two
// cores. The guest still decides every name, mode and owner: it only
// reads bytes.

// Compression kinds of stream_open.
const (
	streamAuto  = 0 // by magic number: gzip, xz, zstd, bzip2, else none
	streamNone  = 1
	streamGzip  = 2
	streamXz    = 3
	streamZstd  = 4
	streamBzip2 = 5
)

const (
	// maxStreams bounds the streams a stage has open at once, and so the
	// host memory and goroutines it can hold: an untar needs one, a .deb two.
	maxStreams = 8
	// streamChunk and streamAhead: how far a stream decompresses ahead of
	// its reader, in chunks of what size (1 MiB of host memory a stream).
	streamChunk = 256 << 10
	streamAhead = 4
)

// dataError is what ends a stream on bad compressed data rather than on a
// read error of the file: stream_read reports it as EBADMSG, and
// stream_error gives its text.
type dataError struct{ err error }

func (e dataError) Error() string { return e.err.Error() }
func (e dataError) Unwrap() error { return e.err }

// asDataError marks err, an error of a decompressor, as a dataError unless
// it is one of the file beneath, which keeps its errno.
func asDataError(err error) error {
	var errno unix.Errno
	var de dataError
	if errors.As(err, &errno) || errors.As(err, &de) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return dataError{errors.New("truncated")}
	}
	return dataError{err}
}

type streamsKey struct{}

// streamTable is one stage's open streams. Handles are small numbers, never
// reused within a stage.
type streamTable struct {
	mu   sync.Mutex
	open map[uint32]*stream
	next uint32
}

// withStreams gives the context a stream table and closes every stream
// left in it when the module instantiated with that context closes, so
// that no stage leaves a goroutine or a descriptor behind.
func withStreams(ctx context.Context) context.Context {
	t := &streamTable{open: map[uint32]*stream{}}
	ctx = context.WithValue(ctx, streamsKey{}, t)
	return experimental.WithCloseNotifier(ctx, experimental.CloseNotifyFunc(
		func(context.Context, uint32) { t.closeAll() }))
}

func (t *streamTable) add(s *stream) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.open) >= maxStreams {
		return 0, false
	}
	t.next++
	t.open[t.next] = s
	return t.next, true
}

func (t *streamTable) get(h uint32) *stream {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open[h]
}

func (t *streamTable) remove(h uint32) *stream {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.open[h]
	delete(t.open, h)
	return s
}

func (t *streamTable) closeAll() {
	t.mu.Lock()
	open := t.open
	t.open = map[uint32]*stream{}
	t.mu.Unlock()
	for _, s := range open {
		s.close()
	}
}

// A stream is a file being decompressed by its producer goroutine.
type stream struct {
	f        *os.File
	chunks   chan []byte   // decompressed data, in order; closed at the end
	free     chan []byte   // chunks the reader is done with
	done     chan struct{} // closed by close: the producer stops
	finished chan struct{} // closed when the producer is done, just before chunks
	err      error         // why the producer stopped; read after chunks closes
	chunk    []byte        // the chunk being read, whole
	cur      []byte        // its unread rest
	closed   sync.Once
	// A stream is read either as bytes (stream_read) or as a tar archive
	// (tar_next, tar_write), never both: each would lose what the other
	// took.
	plain bool
	tar   *tarState
}

// openStream starts decompressing n bytes of f from off (n < 0: to the
// end). It takes f over.
func openStream(f *os.File, off, n int64, kind uint32) *stream {
	s := &stream{
		f:        f,
		chunks:   make(chan []byte, streamAhead),
		free:     make(chan []byte, streamAhead+1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	for range streamAhead + 1 {
		s.free <- make([]byte, streamChunk)
	}
	var src io.Reader = f
	if off != 0 || n >= 0 {
		if n < 0 {
			n = 1<<63 - 1 - off
		}
		src = io.NewSectionReader(f, off, n)
	}
	go s.produce(src, kind)
	return s
}

func (s *stream) produce(src io.Reader, kind uint32) {
	// chunks closes last: a reader that sees the end (and then asks
	// stream_error why) must find finished closed and err set, not race
	// the producer between the two closes.
	defer close(s.chunks)
	defer close(s.finished)
	r, closer, err := decompressor(bufio.NewReaderSize(src, 1<<16), kind)
	if err != nil {
		s.err = err
		return
	}
	if closer != nil {
		defer closer()
	}
	for {
		var buf []byte
		select {
		case buf = <-s.free:
		case <-s.done:
			return
		}
		n, err := io.ReadFull(r, buf[:cap(buf)])
		if n > 0 {
			select {
			case s.chunks <- buf[:n]:
			case <-s.done:
				return
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		if err != nil {
			s.err = err
			return
		}
	}
}

// decompressor picks the decompressor of kind, or for streamAuto the one
// the magic number names.
func decompressor(br *bufio.Reader, kind uint32) (io.Reader, func(), error) {
	if kind == streamAuto {
		head, err := br.Peek(6)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		switch {
		case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
			kind = streamGzip
		case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
			kind = streamXz
		case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			kind = streamZstd
		case bytes.HasPrefix(head, []byte("BZh")):
			kind = streamBzip2
		default:
			kind = streamNone
		}
	}
	var r io.Reader
	var closer func()
	var err error
	switch kind {
	case streamNone:
		return br, nil, nil
	case streamGzip:
		var z *gzip.Reader
		if z, err = gzip.NewReader(br); err == nil {
			r = z
		}
	case streamXz:
		r, err = xz.NewReader(br)
	case streamZstd:
		var d *zstd.Decoder
		if d, err = zstd.NewReader(br, zstd.WithDecoderConcurrency(1)); err == nil {
			r, closer = d, d.Close
		}
	case streamBzip2:
		r = bzip2.NewReader(br)
	default:
		return nil, nil, unix.EINVAL
	}
	if err != nil {
		return nil, nil, asDataError(err)
	}
	return dataReader{r}, closer, nil
}

// dataReader marks the errors of a decompressor with asDataError.
type dataReader struct{ r io.Reader }

func (d dataReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = asDataError(err)
	}
	return n, err
}

// read copies decompressed bytes into p: at least one unless the stream
// has ended (0, nil) or failed; it blocks only while it has nothing.
func (s *stream) read(ctx context.Context, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.cur) == 0 {
			var chunk []byte
			var ok bool
			if n == 0 {
				select {
				case chunk, ok = <-s.chunks:
				case <-ctx.Done():
					return 0, ctx.Err()
				case <-s.done: // closed under a reader of its own (tarState.parse)
					return 0, unix.EBADF
				}
			} else {
				select {
				case chunk, ok = <-s.chunks:
				default:
					return n, nil // what is there now; no waiting
				}
			}
			if !ok {
				if n > 0 {
					return n, nil // the end or the error on the next call
				}
				return 0, s.err
			}
			s.chunk, s.cur = chunk, chunk
		}
		k := copy(p[n:], s.cur)
		n += k
		s.cur = s.cur[k:]
		if len(s.cur) == 0 {
			s.free <- s.chunk[:cap(s.chunk)] // the free list has room for all
			s.chunk = nil
		}
	}
	return n, nil
}

// close stops the producer and the tar parser, waits for them and closes
// the file.
func (s *stream) close() {
	s.closed.Do(func() {
		close(s.done)
		<-s.finished
		if s.tar != nil {
			<-s.tar.parsed
		}
		_ = s.f.Close() // read-only: nothing to lose
	})
}

// streams is the calling stage's stream table.
func (c *call) streams() (*streamTable, uint32) {
	t, ok := c.ctx.Value(streamsKey{}).(*streamTable)
	if !ok {
		return nil, wasiENOTCAPABLE
	}
	return t, 0
}

// stream is the open stream whose handle is argument i: EBADF for a
// handle the stage does not hold.
func (c *call) stream(i int) (*stream, uint32) {
	t, errno := c.streams()
	if errno != 0 {
		return nil, errno
	}
	s := t.get(c.u32(i))
	if s == nil {
		return nil, wasiErrno(unix.EBADF)
	}
	return s, 0
}

// hostStreamOpen opens the regular file at the guest path, on any mount,
// following symlinks inside it as open(2) does, and starts decompressing
// length bytes of it from offset (length -1: to the end).
func hostStreamOpen(c *call) uint32 {
	t, errno := c.streams()
	if errno != 0 {
		return errno
	}
	m, rel, errno := c.target(0)
	if errno != 0 {
		return errno
	}
	off, n, kind := int64(c.stack[2]), int64(c.stack[3]), c.u32(4)
	if off < 0 || n < -1 || kind > streamBzip2 {
		return wasiEINVAL
	}
	// The handle is written first: a bad pointer must not leave a stream
	// the guest cannot close.
	if !c.mem.WriteUint32Le(c.u32(5), 0) {
		return wasiEFAULT
	}
	fd, err := m.Root.open(rel, unix.O_RDONLY, 0)
	if err != nil {
		return wasiErrno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		closeFd(fd)
		return wasiErrno(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		closeFd(fd)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return wasiErrno(unix.EISDIR)
		}
		return wasiEINVAL
	}
	if off > st.Size || n > st.Size-off {
		closeFd(fd)
		return wasiEINVAL // a range past the end is a wrong offset, not data
	}
	s := openStream(os.NewFile(uintptr(fd), rel), off, n, kind)
	h, ok := t.add(s)
	if !ok {
		s.close()
		return wasiErrno(unix.EMFILE)
	}
	return c.writeU32(5, h)
}

// hostStreamRead reads decompressed bytes into the guest buffer and writes
// their number, 0 at the end of the stream.
func hostStreamRead(c *call) uint32 {
	s, errno := c.stream(0)
	if errno != 0 {
		return errno
	}
	if s.tar != nil {
		return wasiEINVAL
	}
	buf, errno := c.bytes(1)
	if errno != 0 {
		return errno
	}
	if !c.mem.WriteUint32Le(c.u32(3), 0) {
		return wasiEFAULT
	}
	s.plain = true
	n, err := s.read(c.ctx, buf)
	if err != nil {
		if errors.As(err, new(dataError)) {
			return wasiErrno(unix.EBADMSG)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return wasiErrno(unix.EINTR)
		}
		return wasiErrno(err)
	}
	return c.writeU32(3, uint32(n))
}

// hostStreamError writes the message of the error that ended the stream,
// as getxattr writes a value, so that a stage can say what was wrong with
// its archive ("gzip: invalid checksum"), not only EBADMSG.
func hostStreamError(c *call) uint32 {
	s, errno := c.stream(0)
	if errno != 0 {
		return errno
	}
	var msg []byte
	select {
	case <-s.finished:
		if s.err != nil {
			msg = []byte(s.err.Error())
		}
	default: // still running: no error yet
	}
	if s.tar != nil && s.tar.err != nil && msg == nil {
		msg = []byte(s.tar.err.Error()) // the archive's, read in the host
	}
	buf, errno := c.bytes(1)
	if errno != 0 {
		return errno
	}
	if len(buf) > 0 && len(buf) < len(msg) {
		return wasiErrno(unix.ERANGE)
	}
	copy(buf, msg)
	return c.writeU32(3, uint32(len(msg)))
}

func hostStreamClose(c *call) uint32 {
	t, errno := c.streams()
	if errno != 0 {
		return errno
	}
	s := t.remove(c.u32(0))
	if s == nil {
		return wasiErrno(unix.EBADF)
	}
	s.close()
	return wasiESUCCESS
}
