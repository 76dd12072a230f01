// Package tarrec is the record in which kiln_hostfs's tar_next hands a
// stage one tar member the host parsed (docs/hostfs.md, "Reading a tar
// archive in the host"): what a stage decides a member's fate by (type,
// names, size, mode, owner, mtime, device numbers and xattrs), in a flat
// little-endian layout that any guest language can read without a tar
// library. hostfs encodes it and the Go SDK decodes it; both sides
// building on this one package is what keeps them agreeing.
//
// The layout: eight i64 fields (size, mode, uid, gid, mtime seconds,
// mtime nanoseconds, device major, device minor), the type flag byte, three
// zero bytes, then u32 lengths of the name and the link name and the count
// of xattrs; then the name, the link name, and each xattr as u32 name
// length, u32 value length, name, value, sorted by name. Xattrs are the
// archive's "SCHILY.xattr." PAX records, without that prefix; no other PAX
// record is passed on. Like fsmeta, it imports nothing of kiln's and builds
// for wasip1.
package tarrec

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fixed is the size of the record's fixed part.
const Fixed = 8*8 + 4 + 3*4

// Max bounds a record: a hostile archive's PAX records could otherwise
// make one as large as archive/tar allows them, and the guest is asked to
// hold it.
const Max = 4 << 20

// XattrPrefix is the PAX record prefix of an xattr.
const XattrPrefix = "SCHILY.xattr."

// ErrMalformed is a record Decode cannot read.
var ErrMalformed = errors.New("malformed tar record")

// ErrTooLarge is a member whose record would be larger than Max.
var ErrTooLarge = errors.New("tar member's names and xattrs are too large")

// Append appends h's record to b.
func Append(b []byte, h *tar.Header) ([]byte, error) {
	var xattrs []string
	for k := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, XattrPrefix); ok && name != "" {
			xattrs = append(xattrs, k)
		}
	}
	slices.Sort(xattrs)
	n := Fixed + len(h.Name) + len(h.Linkname)
	for _, k := range xattrs {
		n += 8 + len(k) - len(XattrPrefix) + len(h.PAXRecords[k])
	}
	if n > Max {
		return nil, fmt.Errorf("member %.64q: %d bytes: %w", h.Name, n, ErrTooLarge)
	}
	le := binary.LittleEndian
	for _, v := range [8]int64{h.Size, h.Mode, int64(h.Uid), int64(h.Gid),
		h.ModTime.Unix(), int64(h.ModTime.Nanosecond()), h.Devmajor, h.Devminor} {
		b = le.AppendUint64(b, uint64(v))
	}
	b = append(b, h.Typeflag, 0, 0, 0)
	b = le.AppendUint32(b, uint32(len(h.Name)))
	b = le.AppendUint32(b, uint32(len(h.Linkname)))
	b = le.AppendUint32(b, uint32(len(xattrs)))
	b = append(b, h.Name...)
	b = append(b, h.Linkname...)
	for _, k := range xattrs {
		v := h.PAXRecords[k]
		b = le.AppendUint32(b, uint32(len(k)-len(XattrPrefix)))
		b = le.AppendUint32(b, uint32(len(v)))
		b = append(b, k[len(XattrPrefix):]...)
		b = append(b, v...)
	}
	return b, nil
}

// Decode reads a record into a new header, whose PAXRecords hold the
// xattrs under their "SCHILY.xattr." names (nil if there are none). A
// record must be exactly as Append writes it: no bytes left over, xattr
// names sorted and unique.
func Decode(b []byte) (*tar.Header, error) {
	if len(b) < Fixed || b[65] != 0 || b[66] != 0 || b[67] != 0 {
		return nil, ErrMalformed
	}
	le := binary.LittleEndian
	i64 := func(i int) int64 { return int64(le.Uint64(b[8*i:])) }
	nsec := i64(5)
	if nsec < 0 || nsec >= 1e9 {
		return nil, ErrMalformed
	}
	h := &tar.Header{
		Size:     i64(0),
		Mode:     i64(1),
		Uid:      int(i64(2)),
		Gid:      int(i64(3)),
		ModTime:  time.Unix(i64(4), nsec),
		Devmajor: i64(6),
		Devminor: i64(7),
		Typeflag: b[64],
	}
	nameLen, linkLen, nx := uint64(le.Uint32(b[68:])), uint64(le.Uint32(b[72:])), le.Uint32(b[76:])
	rest := b[Fixed:]
	if nameLen+linkLen > uint64(len(rest)) {
		return nil, ErrMalformed
	}
	h.Name = string(rest[:nameLen])
	h.Linkname = string(rest[nameLen : nameLen+linkLen])
	rest = rest[nameLen+linkLen:]
	if uint64(nx)*8 > uint64(len(rest)) {
		return nil, ErrMalformed
	}
	if nx > 0 {
		h.PAXRecords = make(map[string]string, nx)
	}
	prev := ""
	for i := range nx {
		if len(rest) < 8 {
			return nil, ErrMalformed
		}
		kl, vl := uint64(le.Uint32(rest)), uint64(le.Uint32(rest[4:]))
		rest = rest[8:]
		if kl == 0 || kl+vl > uint64(len(rest)) {
			return nil, ErrMalformed
		}
		k := string(rest[:kl])
		if i > 0 && k <= prev {
			return nil, ErrMalformed
		}
		prev = k
		h.PAXRecords[XattrPrefix+k] = string(rest[kl : kl+vl])
		rest = rest[kl+vl:]
	}
	if len(rest) != 0 {
		return nil, ErrMalformed
	}
	return h, nil
}
