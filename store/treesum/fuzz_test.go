package treesum_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/treecopy"
	"github.com/kilnbuild/kiln/store/treesum"
)

// reader hands out the fuzzer's bytes; past the end it yields zeros.
type reader struct{ b []byte }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(max int) []byte {
	n := int(r.byte()) % (max + 1)
	n = min(n, len(r.b))
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// name turns fuzz bytes into a valid, distinct-enough entry name.
func (r *reader) name() string {
	b := bytes.Map(func(c rune) rune {
		if c == '/' || c == 0 {
			return 'x'
		}
		return c
	}, r.bytes(12))
	s := string(b)
	if s == "" || s == "." || s == ".." {
		s = "n" + s
	}
	return s
}

// buildTree makes a small tree at dir from the fuzz input: directories,
// files (some sparse), symlinks and fifos, with modes and user xattrs.
func buildTree(t *testing.T, dir string, data []byte) {
	r := &reader{data}
	dirs := []string{dir}
	n := int(r.byte()%24) + 1
	for range n {
		parent := dirs[int(r.byte())%len(dirs)]
		p := filepath.Join(parent, r.name())
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		kind := r.byte() % 5
		mode := uint32(r.byte())<<4 | uint32(r.byte()&0xf)
		var err error
		switch kind {
		case 0: // directory: the owner must keep rwx to fill and read it
			if err = os.Mkdir(p, 0o700); err == nil {
				dirs = append(dirs, p)
				err = unix.Chmod(p, mode&07777|0o700)
			}
		case 1, 2: // file
			content := r.bytes(64)
			if err = os.WriteFile(p, content, 0o600); err == nil && kind == 2 {
				// A sparse file: a hole, then the content again.
				var f *os.File
				if f, err = os.OpenFile(p, os.O_WRONLY, 0); err == nil {
					_, err = f.WriteAt(content, int64(r.byte())<<16)
					f.Close()
				}
			}
			if err == nil {
				err = unix.Chmod(p, mode&07777|0o400)
			}
		case 3:
			err = os.Symlink(string(bytes.ReplaceAll(r.bytes(20), []byte{0}, []byte("z")))+"t", p)
		case 4:
			err = unix.Mkfifo(p, 0o600)
			if err == nil {
				err = unix.Chmod(p, mode&0o777)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if kind <= 2 && r.byte()%3 == 0 { // user xattrs: files and directories only
			if err := unix.Lsetxattr(p, "user."+r.name(), r.bytes(16), 0); err != nil {
				t.Skipf("no user xattrs here: %v", err)
			}
		}
	}
}

// refSum is docs/treesum.md written out plainly: recursive, sequential,
// reading whole files, so that Sum's parallel, hole-skipping code is
// checked against the definition.
func refSum(t *testing.T, dir string) string {
	h := sha256.New()
	h.Write([]byte("kiln-treesum-v1\x00"))
	h.Write(refEntry(t, dir, ""))
	return hex.EncodeToString(h.Sum(nil))
}

func refEntry(t *testing.T, path, name string) []byte {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	u32 := func(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
	str := func(b []byte, s string) []byte { return append(u32(b, uint32(len(s))), s...) }
	types := map[uint32]byte{unix.S_IFDIR: 'd', unix.S_IFREG: 'f', unix.S_IFLNK: 'l', unix.S_IFCHR: 'c', unix.S_IFBLK: 'b', unix.S_IFIFO: 'p', unix.S_IFSOCK: 's'}
	typ := types[st.Mode&unix.S_IFMT]
	b := []byte{typ}
	b = str(b, name)
	b = u32(b, st.Mode&07777)
	b = u32(b, st.Uid)
	b = u32(b, st.Gid)
	names, err := fsmeta.ListXattrs(path)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	b = u32(b, uint32(len(names)))
	for _, x := range names {
		v, err := fsmeta.GetXattr(path, x)
		if err != nil {
			t.Fatal(err)
		}
		b = str(str(b, x), string(v))
	}
	switch typ {
	case 'd':
		entries, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for _, e := range entries { // sorted by name
			h.Write(refEntry(t, filepath.Join(path, e.Name()), e.Name()))
		}
		b = h.Sum(b)
	case 'f':
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		b = append(b, sum[:]...)
	case 'l':
		target, err := os.Readlink(path)
		if err != nil {
			t.Fatal(err)
		}
		b = str(b, target)
	case 'c', 'b':
		b = u32(u32(b, unix.Major(st.Rdev)), unix.Minor(st.Rdev))
	}
	return b
}

// FuzzTreesum (issue 10): on random small trees (names, modes, sparse and
// dense files, symlinks, fifos, xattrs) Sum is deterministic, equals the
// plain reading of docs/treesum.md, is kept by a copy, and changes when one
// byte of a file's content changes.
func FuzzTreesum(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x05\x00a\x01\x44\x02hello\x00\x01\x00b\x00\x10\x0f"))
	f.Add([]byte("\x10\x00\x03dir\x00\x07\x05\x00\x00\x04file\x02\xa4\x04\x03abc\x02\x00\x03\x02ln\x03\x00\x00\x00\x04fifo\x04\x01\x80"))
	f.Add(bytes.Repeat([]byte{7, 3, 'x', 'y', 'z', 2, 0x3a, 0x4, 10, 's', 'p', 'a', 'r', 's', 'e', 0, 0, 9}, 5))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := filepath.Join(t.TempDir(), "tree")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		buildTree(t, dir, data)
		a, err := treesum.Sum(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := treesum.Sum(t.Context(), dir); err != nil || b != a {
			t.Fatalf("Sum not deterministic: %s then %s (%v)", a, b, err)
		}
		if ref := refSum(t, dir); ref != a {
			t.Fatalf("Sum = %s, docs/treesum.md gives %s", a, ref)
		}
		cp := filepath.Join(t.TempDir(), "copy")
		if err := treecopy.Copy(t.Context(), dir, cp, treecopy.Options{Mode: treecopy.Plain}); err != nil {
			t.Fatal(err)
		}
		if c, err := treesum.Sum(t.Context(), cp); err != nil || c != a {
			t.Fatalf("copy sums %s (%v), original %s", c, err, a)
		}
		// Change one byte of the first non-empty file: the sum must change.
		var victim string
		_ = filepath.WalkDir(cp, func(p string, d os.DirEntry, err error) error {
			if err == nil && victim == "" && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil && fi.Size() > 0 {
					victim = p
				}
			}
			return nil
		})
		if victim == "" {
			return
		}
		var st unix.Stat_t
		if err := unix.Lstat(victim, &st); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(victim, 0o600); err != nil { // writable without root too
			t.Fatal(err)
		}
		fd, err := os.OpenFile(victim, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		one := make([]byte, 1)
		fd.ReadAt(one, 0)
		one[0] ^= 0x80
		_, err = fd.WriteAt(one, 0)
		fd.Close()
		if err == nil {
			err = unix.Chmod(victim, st.Mode&07777) // chmod clears no bits as root; restore exactly
		}
		if err != nil {
			t.Fatal(err)
		}
		if c, err := treesum.Sum(t.Context(), cp); err != nil || c == a {
			t.Fatalf("changing a byte of %s kept the sum %s (%v)", victim, a, err)
		}
	})
}
