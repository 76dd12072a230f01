package hostfstest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treesum"
)

// State records everything a confinement test must find unchanged in a host
// directory: each entry's type, mode, owner, size, times, link count, symlink
// target, content digest and xattrs, and the set of entries itself, so a file
// that appears counts as much as one that changes.
type State struct {
	dir     string
	entries map[string]string
}

// Capture records the state of dir, recursively.
func Capture(t testing.TB, dir string) State {
	t.Helper()
	s := State{dir: dir, entries: map[string]string{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		desc, err := describe(p)
		if err != nil {
			return err
		}
		s.entries[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("capture host state of %s: %v", dir, err)
	}
	return s
}

// describe renders one entry's observable state; atime is left out, since
// reading a file (which a test may do) can change it.
func describe(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%o uid=%d gid=%d nlink=%d size=%d rdev=%d mtime=%d.%09d ctime=%d.%09d",
		st.Mode, st.Uid, st.Gid, st.Nlink, st.Size, st.Rdev, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, " sha256=%s", hex.EncodeToString(sum[:]))
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " target=%q", target)
	}
	xattrs, err := listXattrs(p)
	if err != nil {
		return "", err
	}
	for _, x := range xattrs {
		fmt.Fprintf(&b, " xattr:%s", x)
	}
	return b.String(), nil
}

func listXattrs(p string) ([]string, error) {
	names, err := treesum.ListXattrs(p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		val, err := treesum.GetXattr(p, name)
		if err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%s=%q", name, val))
	}
	slices.Sort(out)
	return out, nil
}

// Check fails the test if the directory differs from the captured state.
func (s State) Check(t testing.TB) {
	t.Helper()
	now := Capture(t, s.dir)
	for p, before := range s.entries {
		after, ok := now.entries[p]
		switch {
		case !ok:
			t.Errorf("host %s: %s disappeared (was %s)", s.dir, p, before)
		case after != before:
			t.Errorf("host %s: %s changed:\n before %s\n after  %s", s.dir, p, before, after)
		}
	}
	for p, after := range now.entries {
		if _, ok := s.entries[p]; !ok {
			t.Errorf("host %s: %s appeared: %s", s.dir, p, after)
		}
	}
}
