package assembler

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/crashpoint"
)

// TarOptions chooses what a tarball of a tree keeps besides contents,
// modes and numeric ownership.
type TarOptions struct {
	ACLs    bool // system.posix_acl_* xattrs
	SELinux bool // security.selinux
	Xattrs  bool // every other xattr
	Epoch   int64
}

// WriteTar writes the tree at dir to w as a reproducible tar stream:
// entries in lexical order, names relative as "./etc/hostname", mtimes
// clamped to opts.Epoch and truncated to seconds, numeric owners only,
// xattrs as PAX records, hardlinks as links, no atimes, ctimes or user and
// group names. Sockets, which tar cannot hold, are left out.
//
// One goroutine walks the tree and reads small files ahead while this one
// writes, so that reading overlaps with compressing, as it does in a
// `tar | zstd` pipeline.
func WriteTar(ctx context.Context, w io.Writer, dir string, opts TarOptions) error {
	// The walker gets a context of its own, to be stopped on a write
	// error; the writer checks the caller's.
	walkCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	entries := make(chan tarEntry, 64)
	walkErr := make(chan error, 1)
	go func() {
		defer close(entries)
		walkErr <- walkTar(walkCtx, dir, opts, entries)
	}()
	err := writeEntries(ctx, w, entries)
	cancel() // on a write error, stop the walker; it ends either way
	for range entries {
	}
	if werr := <-walkErr; err == nil {
		err = werr // the walk failed, or the caller canceled
	}
	if err != nil {
		return fmt.Errorf("tar of %s: %w", dir, err)
	}
	return nil
}

// readAheadMax is the largest file read into memory ahead of writing; with
// the channel's 64 entries it bounds the memory read ahead to 16 MiB.
const readAheadMax = 256 << 10

// tarEntry is one header with, for a small regular file, its contents.
type tarEntry struct {
	hdr  *tar.Header
	path string
	data []byte // nil: stream from path
}

func writeEntries(ctx context.Context, w io.Writer, entries <-chan tarEntry) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 1<<20)
	for e := range entries {
		crashpoint.Hit("assembler.tar.entry")
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if e.hdr.Typeflag == tar.TypeReg && e.hdr.Size > 0 && e.data == nil {
			err = writeFile(ctx, w, tw, e, buf)
		} else if err = tw.WriteHeader(e.hdr); err == nil && e.data != nil {
			_, err = tw.Write(e.data)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.hdr.Name, err)
		}
	}
	return tw.Close()
}

// writeFile writes a regular file too big to have been read ahead: as it
// is, or as a sparse member if it has holes (see dataRegions).
func writeFile(ctx context.Context, w io.Writer, tw *tar.Writer, e tarEntry, buf []byte) error {
	f, err := os.OpenFile(e.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size := e.hdr.Size
	regions := []region{{0, size}}
	if size >= sparseChunk {
		if regions, err = dataRegions(ctx, f, size); err != nil {
			return err
		}
	}
	if len(regions) == 1 && regions[0] == (region{0, size}) {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return err
		}
		return copyFrom(ctx, tw, f, size, buf)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeSparse(ctx, w, e.hdr, f, regions, buf)
}

// walkTar sends the tree's entries in lexical order.
func walkTar(ctx context.Context, dir string, opts TarOptions, out chan<- tarEntry) error {
	links := map[[2]uint64]string{}
	epoch := time.Unix(opts.Epoch, 0)
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", path, err)
		}
		name := "./"
		if rel != "." {
			name += rel
		}
		mtime := time.Unix(st.Mtim.Sec, 0)
		if mtime.After(epoch) {
			mtime = epoch
		}
		hdr := &tar.Header{
			Name: name, Mode: int64(st.Mode & 07777), Uid: int(st.Uid), Gid: int(st.Gid),
			ModTime: mtime, Format: tar.FormatPAX,
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			hdr.Typeflag = tar.TypeDir
			if rel != "." {
				hdr.Name += "/"
			}
		case unix.S_IFREG:
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			} else {
				hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
				if st.Nlink > 1 {
					links[key] = name
				}
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case unix.S_IFCHR, unix.S_IFBLK:
			hdr.Typeflag = tar.TypeChar
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				hdr.Typeflag = tar.TypeBlock
			}
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			hdr.Typeflag = tar.TypeFifo
		default:
			return nil // a socket
		}
		if err := addXattrs(hdr, path, opts); err != nil {
			return err
		}
		e := tarEntry{hdr: hdr, path: path}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 && hdr.Size <= readAheadMax {
			if e.data, err = readSmall(path, hdr.Size); err != nil {
				return err
			}
		}
		select {
		case out <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// readSmall reads a file of the size lstat gave, which must not change
// while the tree is archived.
func readSmall(path string, size int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("%s: %w (did it change while being read?)", path, err)
	}
	return data, nil
}

// copyFile copies the file at path, which must be size bytes long, to w.
func copyFile(ctx context.Context, w io.Writer, path string, size int64, buf []byte) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return copyFrom(ctx, w, f, size, buf)
}

// copyFrom copies size bytes of f to w a buffer at a time, checking ctx
// between buffers so that a cancelled build stops within one.
func copyFrom(ctx context.Context, w io.Writer, f io.ReaderAt, size int64, buf []byte) error {
	for done := int64(0); done < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		// ReadAt: dataRegions has moved the offset with SEEK_DATA.
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-done)], done)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			done += int64(n)
		}
		switch {
		case done == size:
			return nil
		case err == io.EOF || err == nil && n == 0:
			return fmt.Errorf("%s: shrank from %d to %d bytes while being read", nameOf(f), size, done)
		case err != nil:
			return fmt.Errorf("%s: %w", nameOf(f), err)
		}
	}
	return nil
}

func addXattrs(hdr *tar.Header, path string, opts TarOptions) error {
	names, err := fsmeta.ListXattrs(path)
	if err != nil {
		return err
	}
	for _, n := range names {
		isACL := strings.HasPrefix(n, "system.posix_acl_")
		isSELinux := n == "security.selinux"
		if isACL && !opts.ACLs || isSELinux && !opts.SELinux || !isACL && !isSELinux && !opts.Xattrs {
			continue
		}
		v, err := fsmeta.GetXattr(path, n)
		if err != nil {
			return err
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+n] = string(v)
	}
	return nil
}

// errOption names the option at fault in an assembler's error.
func errOption(assembler, option, format string, args ...any) error {
	return fmt.Errorf("%w: %s: option %q: %s", ErrFailed, assembler, option, fmt.Sprintf(format, args...))
}

// outputFile creates name in dir, refusing names that are not a plain
// file name: output must stay in the output directory.
func outputFile(assembler, dir, name string) (*os.File, error) {
	if !filenameRE.MatchString(name) {
		return nil, errOption(assembler, "filename", "%q must be a plain file name (%s)", name, filenamePattern)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, errOption(assembler, "filename", "%q written twice", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: creating the output: %w", assembler, err)
	}
	return f, nil
}

// nameOf is a reader's file name, for errors.
func nameOf(r io.ReaderAt) string {
	if f, ok := r.(interface{ Name() string }); ok {
		return f.Name()
	}
	return "(file)"
}
