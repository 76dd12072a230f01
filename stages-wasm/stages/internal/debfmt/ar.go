package debfmt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrNotAr is wrapped by every error about an ar archive's format.
var ErrNotAr = errors.New("not an ar archive")

// ArReader reads the members of an ar archive (the common format GNU and
// BSD ar write, as dpkg-deb does; no symbol table or long-name table) in
// order, streaming: a member's content must be read, or is skipped, before
// the next member.
type ArReader struct {
	r       *bufio.Reader
	pending int64 // bytes of the current member (with its padding) unread
	next    int64 // offset in the archive of the next member's header
	// off and size place the current member's content in the archive, so
	// that a caller holding the file can hand the range to someone else
	// (kiln.deb has the host decompress data.tar).
	off, size int64
}

// NewArReader checks the archive's magic.
func NewArReader(r io.Reader) (*ArReader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "!<arch>\n" {
		return nil, fmt.Errorf("no ar magic: %w", ErrNotAr)
	}
	return &ArReader{r: br, next: 8}, nil
}

// Span is where the member Next last returned lies in the archive: its
// content's offset from the archive's first byte, and its size.
func (a *ArReader) Span() (off, size int64) { return a.off, a.size }

// Next skips what is left of the current member and returns the next
// one's name and a reader of exactly its content; io.EOF after the last.
func (a *ArReader) Next() (string, io.Reader, error) {
	if a.pending > 0 {
		if _, err := a.r.Discard(int(a.pending)); err != nil {
			return "", nil, fmt.Errorf("truncated ar member: %w", ErrNotAr)
		}
		a.pending = 0
	}
	var h [60]byte
	if n, err := io.ReadFull(a.r, h[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return "", nil, io.EOF
		}
		return "", nil, fmt.Errorf("truncated ar header: %w", ErrNotAr)
	}
	if h[58] != '`' || h[59] != '\n' {
		return "", nil, fmt.Errorf("bad ar header: %w", ErrNotAr)
	}
	name := strings.TrimSuffix(strings.TrimRight(string(h[0:16]), " "), "/")
	size, err := strconv.ParseInt(strings.TrimRight(string(h[48:58]), " "), 10, 64)
	if err != nil || size < 0 {
		return "", nil, fmt.Errorf("ar member %q: bad size: %w", name, ErrNotAr)
	}
	a.pending = size + size%2
	a.off, a.size = a.next+60, size
	a.next = a.off + a.pending
	return name, &memberReader{a: a, n: size}, nil
}

// memberReader reads one member's content and keeps ArReader.pending.
type memberReader struct {
	a *ArReader
	n int64
}

func (m *memberReader) Read(p []byte) (int, error) {
	if m.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > m.n {
		p = p[:m.n]
	}
	n, err := m.a.r.Read(p)
	m.n -= int64(n)
	m.a.pending -= int64(n)
	if errors.Is(err, io.EOF) && m.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
