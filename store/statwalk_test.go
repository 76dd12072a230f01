package store

import (
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
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
