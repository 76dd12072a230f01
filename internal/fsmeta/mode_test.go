package fsmeta

import (
	"io/fs"
	"testing"
)

func TestFileModeFromLinux(t *testing.T) {
	for _, c := range []struct {
		st   uint32
		want fs.FileMode
	}{
		{S_IFREG | 0o644, 0o644},
		{S_IFDIR | 0o1777, fs.ModeDir | fs.ModeSticky | 0o777},
		{S_IFLNK | 0o777, fs.ModeSymlink | 0o777},
		{S_IFCHR | 0o4755, fs.ModeDevice | fs.ModeCharDevice | fs.ModeSetuid | 0o755},
		{S_IFBLK | 0o2660, fs.ModeDevice | fs.ModeSetgid | 0o660},
		{S_IFIFO | 0o600, fs.ModeNamedPipe | 0o600},
		{S_IFSOCK | 0o755, fs.ModeSocket | 0o755},
	} {
		if got := FileMode(c.st); got != c.want {
			t.Errorf("FileMode(%#o) = %v, want %v", c.st, got, c.want)
		}
	}
}

// TestNodeModeRoundTrip: what mknod is given reads back as the FileMode it
// came from, and Perm keeps only the bits chmod sets.
func TestNodeModeRoundTrip(t *testing.T) {
	for _, m := range []fs.FileMode{0o644, fs.ModeNamedPipe | 0o600, fs.ModeDevice | 0o660, fs.ModeDevice | fs.ModeCharDevice | fs.ModeSticky | 0o666, fs.ModeSetuid | fs.ModeSetgid | 0o755} {
		lm, ok := NodeMode(m)
		if !ok || FileMode(lm) != m {
			t.Errorf("NodeMode(%v) = %o, %v: round trip gives %v", m, lm, ok, FileMode(lm))
		}
		if p := Perm(m); p != lm&PermBits {
			t.Errorf("Perm(%v) = %o, want %o", m, p, lm&PermBits)
		}
	}
	for _, m := range []fs.FileMode{fs.ModeDir | 0o755, fs.ModeSymlink | 0o777, fs.ModeSocket | 0o600} {
		if _, ok := NodeMode(m); ok {
			t.Errorf("NodeMode accepted %v, which mknod cannot make", m)
		}
	}
	if p := Perm(fs.ModeDir | fs.ModeSetuid | fs.ModeSticky | 0o750); p != 0o5750 {
		t.Errorf("Perm kept the type or lost a bit: %o", p)
	}
}

func TestTypeName(t *testing.T) {
	for st, want := range map[uint32]string{
		S_IFIFO | 0o600: "a FIFO", S_IFDIR: "a directory", S_IFCHR: "a character device",
		S_IFBLK: "a block device", S_IFSOCK: "a socket", S_IFLNK: "a symlink", S_IFREG: "a regular file",
		0o030000: "file type 030000",
	} {
		if got := TypeName(st); got != want {
			t.Errorf("TypeName(%#o) = %q, want %q", st, got, want)
		}
	}
}
