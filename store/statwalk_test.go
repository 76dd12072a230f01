package store

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// TestStatWalkOrder: the parallel stat walk hashes the entries in the
// order of a plain depth-first walk with sorted names (the treesum index's
// order, which a linked object's file lines must follow), on names that
// sort differently as whole paths ("a/x" before "a-b" and "a\x01").
func TestStatWalkOrder(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"a/x", "a/y/z", "a-b", "a\x01", "a.c/d", "b", "a0/e", "usr/bin/su"} {
		p := filepath.Join(root, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(name), 0o644))
	}
	must(t, os.Symlink("../usr/bin/su", filepath.Join(root, "a/su")))
	must(t, os.Link(filepath.Join(root, "usr/bin/su"), filepath.Join(root, "a/y/su.hard")))
	must(t, unix.Mkfifo(filepath.Join(root, "a/fifo"), 0o600))
	must(t, os.Chmod(filepath.Join(root, "usr/bin/su"), 0o4755))
	if err := unix.Lsetxattr(filepath.Join(root, "b"), "user.kiln", []byte("v"), 0); err != nil {
		t.Logf("no user xattrs here (%v): the linked lines are checked without them", err)
	}
	for _, linked := range []bool{false, true} {
		want, wantFiles := refStatWalk(t, root, linked)
		got, gotFiles, err := statWalk(t.Context(), root, linked)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("linked=%v: digest %s, a serial walk gives %s", linked, got, want)
		}
		if !slices.EqualFunc(gotFiles, wantFiles, func(a, b statRec) bool { return a.path == b.path && string(a.line) == string(b.line) }) {
			t.Errorf("linked=%v: file lines differ:\n%v\nwant\n%v", linked, gotFiles, wantFiles)
		}
		if linked && len(gotFiles) == 0 {
			t.Error("no file lines for a linked tree")
		}
	}
}

// refStatWalk is the stat digest as a serial filepath.WalkDir computes it.
func refStatWalk(t *testing.T, root string, linked bool) (string, []statRec) {
	h := newStatHash(linked)
	var files []statRec
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		rel = filepath.ToSlash(rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line, err := statLine(p, rel, &st, linked)
		if err != nil {
			return err
		}
		h.Write(line)
		if linked && st.Mode&unix.S_IFMT == unix.S_IFREG {
			files = append(files, statRec{rel, line})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), files
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStatLineFormat: a line is what kiln wrote before it stopped using
// fmt (digests recorded by then stay valid), xattrs quoted the same way.
func TestStatLineFormat(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, []byte("x"), 0o644))
	xattrs := unix.Lsetxattr(p, "user.a\"b", []byte("v\x00\n\xff"), 0) == nil
	must(t, os.Symlink("f", filepath.Join(dir, "l")))
	for _, c := range []struct {
		name, rel string
		linked    bool
	}{{"f", "", true}, {"f", "a/f", true}, {"f", "a/f", false}, {"l", "a\x01/l", true}, {".", "", false}} {
		pp := filepath.Join(dir, c.name)
		var st unix.Stat_t
		must(t, unix.Lstat(pp, &st))
		st.Rdev, st.Size = 1<<40+3, 1<<33+7
		got, err := statLine(pp, c.rel, &st, c.linked)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		ctime := st.Ctim
		if st.Mode&unix.S_IFMT == unix.S_IFREG && c.linked {
			ctime = unix.Timespec{}
			xs, _ := fsmeta.ListXattrs(pp)
			for _, x := range xs {
				v, _ := fsmeta.GetXattr(pp, x)
				fmt.Fprintf(&want, "%q=%q ", x, v)
			}
		}
		rel := c.rel
		if rel == "" {
			rel = "."
		}
		fmt.Fprintf(&want, "%s\x00%o %d %d %d %d %d.%d %d.%d\n", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Rdev,
			st.Mtim.Sec, st.Mtim.Nsec, ctime.Sec, ctime.Nsec)
		if string(got) != want.String() {
			t.Errorf("%s as %q: line %q, want %q", c.name, c.rel, got, want.String())
		}
	}
	if !xattrs {
		t.Log("no user xattrs here: their quoting was not checked")
	}
}
