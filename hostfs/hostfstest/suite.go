// Package hostfstest is the behaviour suite every hostfs resolver must pass,
// plus the host-state check that confinement tests end with.
//
// A backend's test is a factory and one call:
//
//	func TestUserspace(t *testing.T) {
//		hostfstest.Suite(t, func(t *testing.T, dir string) *hostfs.Root {
//			return open(t, dir, hostfs.WithResolver(hostfs.ResolveUserspace))
//		})
//	}
//
// Each check builds a fresh tree next to an "outside" directory holding a
// sentinel file, runs operations through the root's wazero FS, and then
// checks the effect on disk: what should change in the tree did, and nothing
// outside did.
package hostfstest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/hostfs"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// Factory opens a root for dir, a tree the suite has built. The root is
// closed by the suite.
type Factory func(t *testing.T, dir string) *hostfs.Root

// Sentinel is the content of the file outside every tree that no check may
// read or change.
const Sentinel = "host secret, never seen by a stage\n"

// Env is one check's fixture.
type Env struct {
	Base    string // holds tree and outside, and nothing else
	Tree    string // the root's directory
	Outside string // the host directory beside the tree, holding "secret"
	Root    *hostfs.Root
	FS      experimentalsys.FS // Root's read-write FS
	RO      experimentalsys.FS // Root's read-only FS
	host    State
}

// NewEnv builds the standard tree:
//
//	tree/etc/hostname            "kiln\n"
//	tree/usr/share/zoneinfo/UTC  "TZif"
//	tree/etc/localtime -> /usr/share/zoneinfo/UTC
//	tree/escape   -> /                    (absolute: the root)
//	tree/up       -> ../../..             (climbs past the root)
//	tree/outlink  -> <Outside>            (absolute host path of outside)
//	tree/rel      -> ../outside/secret    (relative path of the sentinel)
//	tree/loop     -> loop
//	tree/dir/     (empty)
//	outside/secret                        Sentinel, mode 0640, xattr user.kiln
func NewEnv(t *testing.T, open Factory) *Env {
	t.Helper()
	base := t.TempDir()
	e := &Env{Base: base, Tree: filepath.Join(base, "tree"), Outside: filepath.Join(base, "outside")}
	must(t, os.MkdirAll(filepath.Join(e.Tree, "etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(e.Tree, "usr/share/zoneinfo"), 0o755))
	must(t, os.MkdirAll(filepath.Join(e.Tree, "dir"), 0o755))
	must(t, os.MkdirAll(e.Outside, 0o755))
	must(t, os.WriteFile(filepath.Join(e.Tree, "etc/hostname"), []byte("kiln\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(e.Tree, "usr/share/zoneinfo/UTC"), []byte("TZif"), 0o644))
	secret := filepath.Join(e.Outside, "secret")
	must(t, os.WriteFile(secret, []byte(Sentinel), 0o640))
	must(t, os.Chmod(secret, 0o640))
	// user.* xattrs need a filesystem that has them (ext4, xfs, tmpfs 6.6+);
	// where missing, the content and mode checks still stand.
	if err := unix.Lsetxattr(secret, "user.kiln", []byte("sentinel"), 0); err != nil && err != unix.ENOTSUP {
		t.Fatalf("setxattr on sentinel: %v", err)
	}
	for name, target := range map[string]string{
		"etc/localtime": "/usr/share/zoneinfo/UTC",
		"escape":        "/",
		"up":            "../../..",
		"outlink":       e.Outside,
		"rel":           "../outside/secret",
		"loop":          "loop",
	} {
		must(t, os.Symlink(target, filepath.Join(e.Tree, name)))
	}
	e.Root = open(t, e.Tree)
	t.Cleanup(func() {
		if err := e.Root.Close(); err != nil {
			t.Errorf("close root: %v", err)
		}
	})
	e.FS = e.Root.FS()
	e.RO = hostfs.NewFS(e.Root, true)
	e.host = Capture(t, e.Outside)
	// Every check ends with the host side unchanged, whether or not it
	// says so itself.
	t.Cleanup(func() { e.CheckHost(t) })
	return e
}

// CheckHost fails the test if anything outside the tree changed, or if any
// entry but tree and outside appeared beside them.
func (e *Env) CheckHost(t *testing.T) {
	t.Helper()
	e.host.Check(t)
	entries, err := os.ReadDir(e.Base)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range entries {
		if d.Name() != "tree" && d.Name() != "outside" {
			t.Errorf("host: %s appeared beside the tree", filepath.Join(e.Base, d.Name()))
		}
	}
}

// ReadFile reads path through fsys, as a guest would.
func ReadFile(fsys experimentalsys.FS, path string) (string, experimentalsys.Errno) {
	f, errno := fsys.OpenFile(path, experimentalsys.O_RDONLY, 0)
	if errno != 0 {
		return "", errno
	}
	defer f.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, errno := f.Read(buf)
		if errno != 0 {
			return b.String(), errno
		}
		if n == 0 {
			return b.String(), 0
		}
		b.Write(buf[:n])
	}
}

// Suite runs every check against roots from open.
func Suite(t *testing.T, open Factory) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"Resolve", testResolve},
		{"SymlinkHops", testSymlinkHops},
		{"Create", testCreate},
		{"OpenFlags", testOpenFlags},
		{"ExactModes", testExactModes},
		{"Mutations", testMutations},
		{"LinkAndRename", testLinkAndRename},
		{"Metadata", testMetadata},
		{"SpecialFiles", testSpecialFiles},
		{"ReadOnly", testReadOnly},
		{"Readdir", testReaddir},
		{"FileOps", testFileOps},
		{"BadPaths", testBadPaths},
		{"Closed", testClosed},
		{"SwapRace", testSwapRace},
		{"MountInside", testMountInside},
		{"FrozenClock", testFrozenClock},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, open)
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErrno(t *testing.T, op string, got, want experimentalsys.Errno) {
	t.Helper()
	if got != want {
		t.Errorf("%s: errno %v (%d), want %v (%d)", op, got, got, want, want)
	}
}
