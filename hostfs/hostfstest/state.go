package hostfstest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta/fsmetatest"
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
	entries, err := fsmetatest.Lines(dir, describe)
	if err != nil {
		t.Fatalf("capture host state of %s: %v", dir, err)
	}
	return State{dir: dir, entries: entries}
}

// describe renders one entry's observable state; atime is left out, since
// reading a file (which a test may do) can change it.
func describe(e *fsmetatest.Entry) string {
	st := &e.Stat
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%o uid=%d gid=%d nlink=%d size=%d rdev=%d mtime=%d.%09d ctime=%d.%09d",
		st.Mode, st.Uid, st.Gid, st.Nlink, st.Size, st.Rdev, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	switch e.Type() {
	case unix.S_IFREG:
		sum := sha256.Sum256(e.Content)
		fmt.Fprintf(&b, " sha256=%s", hex.EncodeToString(sum[:]))
	case unix.S_IFLNK:
		fmt.Fprintf(&b, " target=%q", e.Target)
	}
	for _, x := range fsmetatest.XattrStrings(e.Xattrs, "%s=%q") {
		fmt.Fprintf(&b, " xattr:%s", x)
	}
	return b.String()
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
