package treesum

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the vectors own files as uid 0 and create device nodes")
	}
}

// vectorTree builds vector 2 of docs/treesum.md under dir.
func vectorTree(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "hello"), []byte("hello\n"), 0o644))
	must(os.Chmod(filepath.Join(dir, "hello"), 0o644))
	must(unix.Lsetxattr(filepath.Join(dir, "hello"), "user.kiln", []byte("1"), 0))
	must(os.Mkdir(filepath.Join(dir, "etc"), 0o755))
	must(os.Chmod(filepath.Join(dir, "etc"), 0o755))
	must(os.Symlink("../usr/share/zoneinfo/UTC", filepath.Join(dir, "etc", "localtime")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(os.Chmod(filepath.Join(dir, "fifo"), 0o600))
	must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(os.Chmod(filepath.Join(dir, "null"), 0o666))
	must(os.Chmod(dir, 0o755))
	must(os.Lchown(dir, 0, 0))
}

func emptyRoot(t testing.TB) string {
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The vectors published in docs/treesum.md.
const (
	vectorEmpty = "1e6c10b8f374322d484407bc8d778868d42b2dd2c9376df4bf1f09b48d5b1cd5"
	vectorSmall = "4ab32650bdb89a8dbbc94981319b0e80e7038fcbeaaacfc47c4cd5a397c4b8c7"
)

func TestVectors(t *testing.T) {
	requireRoot(t)
	empty := emptyRoot(t)
	small := emptyRoot(t)
	vectorTree(t, small)
	for _, tc := range []struct{ name, dir, want string }{
		{"empty", empty, vectorEmpty},
		{"small", small, vectorSmall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sum(t.Context(), tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Sum = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestEncodingByHand rebuilds the empty vector's hash input byte by byte, as
// a reader of docs/treesum.md would, so the document and the code cannot
// drift apart silently.
func TestEncodingByHand(t *testing.T) {
	requireRoot(t)
	var in []byte
	in = append(in, "kiln-treesum-v1\x00"...)
	in = append(in, 'd')
	for _, v := range []uint32{0 /* name length */, 0o755, 0, 0, 0 /* xattrs */} {
		in = binary.BigEndian.AppendUint32(in, v)
	}
	noChildren := sha256.Sum256(nil)
	in = append(in, noChildren[:]...)
	want := sha256.Sum256(in)
	got, err := Sum(t.Context(), emptyRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if got != hex.EncodeToString(want[:]) {
		t.Errorf("Sum = %s, hand-built encoding gives %x", got, want)
	}
}

// TestWhatCounts checks each property the sum covers changes it, and each
// property it excludes does not.
func TestWhatCounts(t *testing.T) {
	requireRoot(t)
	type change struct {
		name    string
		mutate  func(t *testing.T, dir string) error
		changes bool
	}
	p := func(dir, name string) string { return filepath.Join(dir, name) }
	for _, tc := range []change{
		{"nothing", func(*testing.T, string) error { return nil }, false},
		{"mtime", func(_ *testing.T, d string) error {
			return os.Chtimes(p(d, "hello"), time.Unix(1, 0), time.Unix(1, 0))
		}, false},
		{"root mtime", func(_ *testing.T, d string) error {
			return os.Chtimes(d, time.Unix(1, 0), time.Unix(1, 0))
		}, false},
		{"hardlink instead of copy", func(_ *testing.T, d string) error {
			if err := os.WriteFile(p(d, "copy"), []byte("hello\n"), 0o644); err != nil {
				return err
			}
			if err := unix.Lsetxattr(p(d, "copy"), "user.kiln", []byte("1"), 0); err != nil {
				return err
			}
			return os.Chmod(p(d, "copy"), 0o644)
		}, false},
		{"content", func(_ *testing.T, d string) error { return os.WriteFile(p(d, "hello"), []byte("bye\n"), 0) }, true},
		{"mode", func(_ *testing.T, d string) error { return os.Chmod(p(d, "hello"), 0o600) }, true},
		{"setuid", func(_ *testing.T, d string) error { return unix.Chmod(p(d, "hello"), 0o4644) }, true},
		{"uid", func(_ *testing.T, d string) error { return os.Lchown(p(d, "hello"), 1, 0) }, true},
		{"gid", func(_ *testing.T, d string) error { return os.Lchown(p(d, "hello"), 0, 1) }, true},
		{"symlink owner", func(_ *testing.T, d string) error { return os.Lchown(p(d, "etc/localtime"), 5, 5) }, true},
		{"xattr value", func(_ *testing.T, d string) error {
			return unix.Lsetxattr(p(d, "hello"), "user.kiln", []byte("2"), 0)
		}, true},
		{"xattr added to dir", func(_ *testing.T, d string) error {
			return unix.Lsetxattr(p(d, "etc"), "user.x", nil, 0)
		}, true},
		{"symlink target", func(_ *testing.T, d string) error {
			if err := os.Remove(p(d, "etc/localtime")); err != nil {
				return err
			}
			return os.Symlink("/usr/share/zoneinfo/UTC", p(d, "etc/localtime"))
		}, true},
		{"device minor", func(_ *testing.T, d string) error {
			if err := os.Remove(p(d, "null")); err != nil {
				return err
			}
			if err := unix.Mknod(p(d, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
				return err
			}
			return os.Chmod(p(d, "null"), 0o666)
		}, true},
		{"fifo to file", func(_ *testing.T, d string) error {
			if err := os.Remove(p(d, "fifo")); err != nil {
				return err
			}
			if err := os.WriteFile(p(d, "fifo"), nil, 0o600); err != nil {
				return err
			}
			return os.Chmod(p(d, "fifo"), 0o600)
		}, true},
		{"rename", func(_ *testing.T, d string) error { return os.Rename(p(d, "hello"), p(d, "hellp")) }, true},
		{"empty dir added", func(_ *testing.T, d string) error { return os.Mkdir(p(d, "etc/x"), 0o755) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := emptyRoot(t), emptyRoot(t)
			vectorTree(t, a)
			vectorTree(t, b)
			if tc.name == "hardlink instead of copy" {
				if err := os.Link(p(a, "hello"), p(a, "copy")); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.mutate(t, b); err != nil {
				t.Fatal(err)
			}
			sa, err := Sum(t.Context(), a)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := Sum(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			if changed := sa != sb; changed != tc.changes {
				t.Errorf("sum changed = %v, want %v (%s vs %s)", changed, tc.changes, sa, sb)
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Sum(ctx, t.TempDir()); err == nil {
		t.Fatal("Sum with a canceled context succeeded")
	}
}
