//go:build wasip1

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/treepath"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

type untarOptions struct {
	Prefix *string `json:"prefix"`
	Source string  `json:"source"`
}

// org.osbuild.untar unpacks a tarball into the tree. osbuild's takes the
// tarball as an input; a v1 manifest has none, so kiln's names it by the
// checksum of an org.osbuild.files source in the option "source". The
// compression (gzip, xz, zstd, bzip2 or none) is found from the first
// bytes. Modes, numeric owners (never names looked up anywhere), xattrs,
// device nodes, FIFOs, hard and symbolic links and mtimes are kept.
func init() {
	sdk.Register("org.osbuild.untar", func(o untarOptions) error {
		prefix := "/"
		if o.Prefix != nil {
			var err error
			if prefix, err = optPath("prefix", *o.Prefix); err != nil {
				return err
			}
		}
		src, err := sourcePath("source", o.Source)
		if err != nil {
			return err
		}
		// The host decompresses (natively, ahead of the stage, on the
		// other core) and parses the headers; the stage still decides
		// every name, mode and owner.
		tr, err := sdk.OpenTar(src, sdk.CompressAuto)
		if err != nil {
			return fmt.Errorf("option \"source\": %w", err)
		}
		defer tr.Close()
		if err := mkdirAll(prefix, 0o755, 0, 0); err != nil {
			return fmt.Errorf("option \"prefix\": %w", err)
		}
		if err := extract(tr, prefix, nil); err != nil {
			return fmt.Errorf("unpacking %s: %w", o.Source, err)
		}
		return nil
	})
}

// decompress picks the decompressor from the stream's magic number, in the
// guest. kiln.deb reads its small control.tar with it; org.osbuild.untar and
// kiln.deb's data.tar have the host decompress and parse them (sdk.OpenTar),
// several times faster.
func decompress(br *bufio.Reader) (io.Reader, error) {
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return xz.NewReader(br)
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case bytes.HasPrefix(head, []byte("BZh")):
		return bzip2.NewReader(br), nil
	}
	return br, nil
}

// dirTimes are set after the entries in a directory are written, since
// writing them changes the directory's mtime.
type dirTime struct {
	path  string
	mtime time.Time
}

// delayedLink is a symlink whose target is absolute or climbs with "..":
// as GNU tar does, a placeholder file stands in for it until every member
// is unpacked, so that no later member is written through it (an archive
// holding "d -> /" and then "d/etc/shadow" must not reach /etc/shadow).
type delayedLink struct {
	name string
	h    *tar.Header
}

func unsafeLink(target string) bool {
	if path.IsAbs(target) {
		return true
	}
	for _, c := range strings.Split(target, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// extractHooks change extract's tar rules into dpkg's for kiln.deb; a nil
// *extractHooks is GNU tar's behaviour, which org.osbuild.untar keeps.
type extractHooks struct {
	// keep decides whether member h, bound for the tree path name, is
	// unpacked at all (dpkg's path-exclude, conflicts between packages).
	keep func(h *tar.Header, name string) (bool, error)
	// done is told of every member kept, in archive order, once written
	// (a delayed symlink once its placeholder is), with the md5 of a
	// regular file's content; the archive's root member "./" comes as
	// name == prefix and is not written. existed says a directory member
	// found a directory there and, as with dpkg, left its metadata alone.
	done func(h *tar.Header, name string, md5sum []byte, existed bool) error
}

func extract(tr *sdk.TarReader, prefix string, hooks *extractHooks) error {
	var dirs []dirTime
	var delayed []delayedLink
	parents := parentDirs{prefix: prefix}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeXGlobalHeader, 'V':
			continue // archive-wide records and volume labels are no files
		case tar.TypeGNUSparse:
			h.Typeflag = tar.TypeReg // the reader expands the holes
		}
		name, err := entryPath(prefix, h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			if hooks != nil {
				if err := hooks.done(h, prefix, nil, true); err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
			}
			continue
		}
		if hooks != nil {
			keep, err := hooks.keep(h, name)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if !keep {
				continue
			}
		}
		if err := parents.ensure(name); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if hooks != nil && h.Typeflag == tar.TypeDir {
			// dpkg merges a directory several packages ship: the first
			// one's mode, owner and mtime stay. A symlink to a directory
			// (a merged /usr) counts as the directory.
			if fi, err := os.Stat(name); err == nil {
				if !fi.IsDir() {
					return fmt.Errorf("%s: a non-directory is in the way of the directory", h.Name)
				}
				if err := hooks.done(h, name, nil, true); err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
				continue
			}
		}
		if h.Typeflag == tar.TypeSymlink && unsafeLink(h.Linkname) {
			if err := removeInTheWay(name); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			f.Close()
			delayed = append(delayed, delayedLink{name, h})
			if hooks != nil {
				if err := hooks.done(h, name, nil, false); err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
			}
			continue
		}
		var sum *[16]byte
		if hooks != nil && h.Typeflag == tar.TypeReg {
			sum = new([16]byte) // dpkg's md5sums
		}
		if err := extractEntry(tr, h, prefix, name, sum); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{name, h.ModTime})
		}
		if hooks != nil {
			var b []byte
			if sum != nil {
				b = sum[:]
			}
			if err := hooks.done(h, name, b, false); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
	}
	for _, d := range delayed {
		// A later member replaced the placeholder: it wins, as in tar.
		if fi, err := os.Lstat(d.name); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
			continue
		}
		if err := extractEntry(tr, d.h, prefix, d.name, nil); err != nil {
			return fmt.Errorf("%s: %w", d.h.Name, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := sdk.Utimens(dirs[i].path, dirs[i].mtime, dirs[i].mtime); err != nil {
			return err
		}
	}
	return nil
}

// parentDirs makes the missing parents of members, as GNU tar does for an
// archive without directory entries (osbuild's own test tarball holds only
// "./hello/world.txt"): root's, mode 0755 (tar's 0777 under the usual umask
// 022) and, as tar leaves them, stamped with the clock, which in a stage is
// SOURCE_DATE_EPOCH. A later directory member for one of them sets its mode,
// owner and mtime as usual.
type parentDirs struct {
	prefix string
	last   string // the parent of the previous member, known to exist
}

func (p *parentDirs) ensure(name string) error {
	// name is clean and absolute (entryPath): its parent is what comes
	// before the last "/", without path.Dir's cleaning again.
	dir := "/"
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		dir = name[:i]
	}
	if dir == p.last || dir == p.prefix {
		return nil
	}
	if err := mkdirAll(dir, 0o755, 0, 0); err != nil {
		return fmt.Errorf("making parent %s: %w", dir, err)
	}
	p.last = dir
	return nil
}

// entryPath places a member name under prefix (treepath.Member).
func entryPath(prefix, name string) (string, error) {
	p, err := treepath.Member(prefix, name)
	if err != nil {
		return "", fmt.Errorf("member %q %w", name, err)
	}
	return p, nil
}

// removeInTheWay removes what stands where a non-directory member goes, as
// with tar's default --overwrite behaviour for non-directories.
func removeInTheWay(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// setXattrs sets the member's xattrs. They come after the owner, whose
// change would clear security.capability, and need not come before the
// mtime: an xattr changes only the ctime.
func setXattrs(name string, h *tar.Header) error {
	for k, v := range h.PAXRecords {
		if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := sdk.SetXattr(name, attr, []byte(v), 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// extractEntry writes member h at name; sum, if not nil, gets the MD5 of
// a regular file's content.
func extractEntry(tr *sdk.TarReader, h *tar.Header, prefix, name string, sum *[16]byte) error {
	perm := permMode(uint32(h.Mode) & 0o7777)
	if h.Typeflag == tar.TypeReg {
		// One host call: data, owner, mode and mtime, replacing what is
		// in the way.
		if err := tr.WriteFile(name, perm, h.Uid, h.Gid, h.ModTime, sum); err != nil {
			return err
		}
		return setXattrs(name, h)
	}
	if h.Typeflag != tar.TypeDir {
		if err := removeInTheWay(name); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := fs.ModeNamedPipe
		switch h.Typeflag {
		case tar.TypeChar:
			kind = fs.ModeDevice | fs.ModeCharDevice
		case tar.TypeBlock:
			kind = fs.ModeDevice
		}
		if err := sdk.Mknod(name, kind|perm, uint32(h.Devmajor), uint32(h.Devminor)); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(h.Linkname, name); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := entryPath(prefix, h.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("hard link to %q: %v", h.Linkname, err)
		}
		// A hard link shares its target's inode: mode, owner and times
		// are the target's, set when the target was unpacked.
		return os.Link(target, name)
	default:
		return fmt.Errorf("unsupported member type %q", h.Typeflag)
	}
	if err := sdk.Lchown(name, h.Uid, h.Gid); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := sdk.Chmod(name, perm); err != nil {
			return err
		}
	}
	if err := setXattrs(name, h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeDir {
		return sdk.Utimens(name, h.ModTime, h.ModTime)
	}
	return nil
}
