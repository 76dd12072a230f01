//go:build wasip1

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/debfmt"
)

// A .deb is an ar archive (deb(5)): "debian-binary" holding "2.x", then
// control.tar[.gz|.xz|.zst], then data.tar[.gz|.xz|.zst|.bz2]; members
// whose names start with "_" may come between them and are skipped. The
// reader is written here rather than taken from pault.ag/go/debian/deb,
// which links golang.org/x/crypto/openpgp, github.com/xi2/xz and
// github.com/kjk/lzma into every stage for what is sixty lines of ar, and
// which accepts members in any order; this one (internal/debfmt's ar
// reader) streams and is strict.

// errNotDeb is wrapped by every error about a .deb's container format.
var errNotDeb = errors.New("not a Debian binary package")

// maxControlSize bounds what a control.tar may hold in memory: control
// members are text (Debian's largest, a templates file, is under 1 MiB).
const maxControlSize = 64 << 20

// debArchive walks a .deb's members in the order deb(5) fixes.
type debArchive struct {
	ar   *debfmt.ArReader
	path string // the .deb, whose data.tar the host decompresses
}

// openDeb reads the .deb at path from r, which reads it from its start.
func openDeb(r io.Reader, path string) (*debArchive, error) {
	ar, err := debfmt.NewArReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotDeb, err)
	}
	name, m, err := ar.Next()
	if err != nil {
		return nil, fmt.Errorf("no debian-binary member: %w", errNotDeb)
	}
	if name != "debian-binary" {
		return nil, fmt.Errorf("first member is %q, not debian-binary: %w", name, errNotDeb)
	}
	v, err := io.ReadAll(io.LimitReader(m, 64))
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(v, []byte("2.")) {
		return nil, fmt.Errorf("format version %q, want 2.x: %w", bytes.TrimSpace(v), errNotDeb)
	}
	return &debArchive{ar: ar, path: path}, nil
}

// next returns the next member whose name is base or base.<ext> for one
// of exts, skipping "_" members, with the extension found.
func (d *debArchive) next(base string, exts ...string) (string, io.Reader, error) {
	for {
		name, m, err := d.ar.Next()
		if errors.Is(err, io.EOF) {
			return "", nil, fmt.Errorf("no %s member: %w", base, errNotDeb)
		}
		if err != nil {
			return "", nil, fmt.Errorf("%w: %w", errNotDeb, err)
		}
		if strings.HasPrefix(name, "_") {
			continue
		}
		ext, ok := strings.CutPrefix(name, base)
		if !ok || (ext != "" && !contains(exts, ext)) {
			return "", nil, fmt.Errorf("member %q where %s was expected: %w", name, base, errNotDeb)
		}
		return ext, m, nil
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readControl reads control.tar into a map from member name ("control",
// "md5sums", "postinst", ...) to content. Only regular files at the top
// level count, as dpkg-deb extracts them.
func (d *debArchive) readControl() (map[string][]byte, error) {
	ext, m, err := d.next("control.tar", ".gz", ".xz", ".zst")
	if err != nil {
		return nil, err
	}
	r, err := decompress(bufio.NewReaderSize(m, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("control.tar%s: %w", ext, err)
	}
	members := map[string][]byte{}
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("control.tar: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || name == "" || strings.Contains(name, "/") {
			continue
		}
		total += h.Size
		if total > maxControlSize {
			return nil, fmt.Errorf("control.tar holds more than %d bytes: %w", maxControlSize, errNotDeb)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("control.tar: %s: %w", name, err)
		}
		members[name] = b
	}
	if _, ok := members["control"]; !ok {
		return nil, fmt.Errorf("control.tar has no control file: %w", errNotDeb)
	}
	return members, nil
}

// dataKinds are the compressions deb(5) allows data.tar, by extension.
var dataKinds = map[string]sdk.Compression{
	"": sdk.CompressNone, ".gz": sdk.CompressGzip, ".xz": sdk.CompressXz,
	".zst": sdk.CompressZstd, ".bz2": sdk.CompressBzip2,
}

// data returns the data.tar archive; it must follow readControl. The host
// decompresses the member's byte range of the .deb and parses its headers
// (hostfs stream_open, tar_next): xz in wasm took most of an install's
// time. The caller closes the archive.
func (d *debArchive) data() (*sdk.TarReader, error) {
	ext, _, err := d.next("data.tar", ".gz", ".xz", ".zst", ".bz2")
	if err != nil {
		return nil, err
	}
	off, size := d.ar.Span()
	tr, err := sdk.OpenTarRange(d.path, off, size, dataKinds[ext])
	if err != nil {
		return nil, fmt.Errorf("data.tar%s: %w", ext, err)
	}
	return tr, nil
}
