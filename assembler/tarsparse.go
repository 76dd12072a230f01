package assembler

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A file can be far larger than the data it holds: org.osbuild.truncate to
// 4E makes a 4 EiB hole, and reading it byte by byte would take centuries.
// The tar stream holds such a file as a PAX sparse member (GNU format 1.0,
// which GNU tar, bsdtar and Go's archive/tar read): a map of data regions,
// then only their bytes.
//
// Which parts are holes depends on the content alone, not on how the
// tree's filesystem stores the file, so the stream stays reproducible:
// a hole is an aligned sparseChunk of zeros, a whole one (the file's last,
// partial chunk is always data). Only chunks that SEEK_DATA reports as
// holding data are read to see whether they are zeros; the rest are holes
// by construction.
const (
	sparseChunk = 1 << 20
	// sparseMaxRegions bounds the map (Go's reader takes at most 1 MiB of
	// map; this is under a third of that).
	sparseMaxRegions = 8192
	// sparseMaxExtents bounds the SEEK_DATA walk over a file the
	// filesystem holds in that many pieces.
	sparseMaxExtents = 1 << 20
)

// ErrTooSparse is wrapped when a file has more data regions than a tar
// sparse map holds.
var ErrTooSparse = errors.New("too many data regions for a tar sparse member")

type region struct{ off, len int64 }

// dataRegions returns the regions of f (size bytes) that the tar stream
// must hold, merged and in order; holes are whole aligned zero chunks.
func dataRegions(ctx context.Context, f *os.File, size int64) ([]region, error) {
	var regions []region
	add := func(off, n int64) error {
		if k := len(regions); k > 0 && regions[k-1].off+regions[k-1].len == off {
			regions[k-1].len += n
			return nil
		}
		if len(regions) == sparseMaxRegions {
			return fmt.Errorf("%w: %s has more than %d", ErrTooSparse, f.Name(), sparseMaxRegions)
		}
		regions = append(regions, region{off, n})
		return nil
	}
	full := size / sparseChunk * sparseChunk // past it, the partial chunk
	buf := make([]byte, sparseChunk)
	fd := int(f.Fd())
	next := int64(0) // the first chunk not yet looked at
	for pos, extents := int64(0), 0; pos < full; extents++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if extents == sparseMaxExtents {
			return nil, fmt.Errorf("%w: %s is in more than %d pieces", ErrTooSparse, f.Name(), sparseMaxExtents)
		}
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return nil, fmt.Errorf("%s: SEEK_DATA: %w", f.Name(), err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("%s: SEEK_HOLE: %w", f.Name(), err)
		}
		for c := max(data/sparseChunk*sparseChunk, next); c < min(hole, full); c += sparseChunk {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if _, err := f.ReadAt(buf, c); err != nil {
				return nil, fmt.Errorf("%s: %w (did it change while being read?)", f.Name(), err)
			}
			if !allZero(buf) {
				if err := add(c, sparseChunk); err != nil {
					return nil, err
				}
			}
			next = c + sparseChunk
		}
		pos = hole
	}
	if full < size {
		if err := add(full, size-full); err != nil {
			return nil, err
		}
	}
	return regions, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sparseKey stands in for "GNU.sparse." in the records handed to Go's
// tar writer, which drops GNU.sparse.* records (it writes no sparse
// files); writeSparse puts the real prefix back. Same length, so no
// record's length changes.
const sparseKey = "KLN.sparse."

// writeSparse writes a regular file's header and its data regions as a
// GNU 1.0 sparse member: the header names GNUSparseFile.0/BASE in the
// file's directory (what a reader that knows no sparse files extracts:
// the map and the data), GNU.sparse.name the file, GNU.sparse.realsize its
// size; the member's data is the map (count, then offset and length of
// each region, one number a line, padded to a block) and the regions'
// bytes. tw must be flushed: this writes to w past it.
func writeSparse(ctx context.Context, w io.Writer, hdr *tar.Header, f *os.File, regions []region, buf []byte) error {
	// GNU tar ends the map of a file that ends in a hole with an empty
	// region at its end; older readers need it to know the size.
	entries := regions
	if len(regions) == 0 || regions[len(regions)-1].off+regions[len(regions)-1].len < hdr.Size {
		entries = append(slices.Clip(regions), region{hdr.Size, 0})
	}
	var m strings.Builder
	m.WriteString(strconv.Itoa(len(entries)) + "\n")
	var data int64
	for _, r := range entries {
		m.WriteString(strconv.FormatInt(r.off, 10) + "\n" + strconv.FormatInt(r.len, 10) + "\n")
		data += r.len
	}
	sparseMap := []byte(m.String())
	sparseMap = append(sparseMap, make([]byte, (512-len(sparseMap)%512)%512)...)

	h := *hdr
	h.PAXRecords = maps.Clone(hdr.PAXRecords)
	if h.PAXRecords == nil {
		h.PAXRecords = map[string]string{}
	}
	name := strings.TrimSuffix(hdr.Name, "/")
	h.Name = path.Join(path.Dir(name), "GNUSparseFile.0", path.Base(name))
	if strings.HasPrefix(name, "./") {
		h.Name = "./" + h.Name
	}
	h.Size = int64(len(sparseMap)) + data
	h.PAXRecords[sparseKey+"major"] = "1"
	h.PAXRecords[sparseKey+"minor"] = "0"
	h.PAXRecords[sparseKey+"name"] = hdr.Name
	h.PAXRecords[sparseKey+"realsize"] = strconv.FormatInt(hdr.Size, 10)
	var hb bytes.Buffer
	if err := tar.NewWriter(&hb).WriteHeader(&h); err != nil {
		return err
	}
	header := hb.Bytes()
	if err := restoreSparseKeys(header); err != nil {
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	if _, err := w.Write(sparseMap); err != nil {
		return err
	}
	for _, r := range regions {
		for off := r.off; off < r.off+r.len; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), r.off+r.len-off)
			if _, err := f.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("%s: %w (did it change while being read?)", f.Name(), err)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			off += n
		}
	}
	if pad := h.Size % 512; pad != 0 {
		if _, err := w.Write(make([]byte, 512-pad)); err != nil {
			return err
		}
	}
	return nil
}

// restoreSparseKeys turns the sparseKey records in the PAX extended header
// at the start of header back into GNU.sparse. ones, reading the records
// by their lengths (a value may hold anything, even "KLN.sparse.").
func restoreSparseKeys(header []byte) error {
	if len(header) < 1024 || header[156] != tar.TypeXHeader {
		return errors.New("no PAX header for the sparse records")
	}
	size, err := strconv.ParseInt(strings.TrimRight(strings.TrimSpace(string(header[124:136])), "\x00"), 8, 64)
	if err != nil || 512+size > int64(len(header)) {
		return errors.New("bad PAX header size")
	}
	records := header[512 : 512+size]
	found := 0
	for len(records) > 0 {
		sp := bytes.IndexByte(records, ' ')
		if sp < 0 {
			return errors.New("bad PAX record")
		}
		n, err := strconv.Atoi(string(records[:sp]))
		if err != nil || n <= sp || n > len(records) {
			return errors.New("bad PAX record length")
		}
		if key := records[sp+1 : n]; bytes.HasPrefix(key, []byte(sparseKey)) {
			copy(key, "GNU.sparse.")
			found++
		}
		records = records[n:]
	}
	if found != 4 {
		return fmt.Errorf("%d of 4 sparse records in the PAX header", found)
	}
	return nil
}
