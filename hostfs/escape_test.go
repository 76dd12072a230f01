package hostfs_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/hostfs"
	"github.com/kilnbuild/kiln/hostfs/hostfstest"
	"golang.org/x/sys/unix"
)

// attacks are the subcommands of testdata/hostile, each a way out of the
// tree; see that program for what each one tries.
var attacks = []string{
	"abs-symlink", "rel-symlink", "dotdot", "planted-links", "swap-race",
	"hardlink", "rename-out", "rename-in", "devices", "proc", "xattr",
	"chown", "chmod", "utimens", "huge-path", "nul-path", "ro-escape-read",
	"ro-write", "dangling-create", "mkdir-mknod", "remove", "readdir",
	"loops", "raw-wasi", "mount-prefix", "trailing-slash", "symlink-overwrite",
}

// Strings in the guest's output that only a breach can put there.
var leaks = []string{
	strings.TrimSpace(hostfstest.Sentinel), // the sentinel file's content
	xattrSentinel,                          // its xattr
	"read-device",                          // a device node was opened
	"PATH=/",                               // kiln's /proc/self/environ
	"sysfs /sys",                           // kiln's /proc/self/mounts
}

const xattrSentinel = "xattr-sentinel-on-the-host"

// TestEscape runs every attack, with each resolver, as a real stage: the
// hostile guest in wazero with the tree at "/", read-only inputs at
// /run/kiln/sources and /run/kiln/build, and kiln_hostfs. Each run then
// proves on the host that nothing outside the tree was read or changed.
func TestEscape(t *testing.T) {
	r, mod := guest(t, "hostile")
	for _, res := range resolvers {
		for _, attack := range attacks {
			t.Run(res.String()+"/"+attack, func(t *testing.T) {
				t.Parallel()
				e := newEscapeEnv(t, res, attack)
				stop := e.startSwapper(t, attack)
				stdout, stderr, code := runGuest(t, r, mod, e.mounts, "hostile", attack, e.outside)
				stop()
				t.Logf("guest output:\n%s", stdout)
				if code != 0 {
					t.Fatalf("guest exited %d: %s", code, stderr)
				}
				for _, leak := range leaks {
					if strings.Contains(stdout, leak) {
						t.Errorf("guest output holds %q: a breach", leak)
					}
				}
				if attack == "ro-write" && strings.Contains(stdout, ": ok") {
					t.Errorf("a write to the read-only mount succeeded")
				}
				e.check(t)
			})
		}
	}
}

type escapeEnv struct {
	base, tree, outside string
	mounts              []hostfs.Mount
	states              []hostfstest.State
}

// newEscapeEnv lays out base/{tree,sources,build,outside}, with symlinks
// aimed at outside planted in the tree and in the read-only sources.
func newEscapeEnv(t *testing.T, res hostfs.Resolver, attack string) *escapeEnv {
	base := t.TempDir()
	e := &escapeEnv{base: base, tree: filepath.Join(base, "tree"), outside: filepath.Join(base, "outside")}
	sources, build := filepath.Join(base, "sources"), filepath.Join(base, "build")
	for _, d := range []string{"tree/etc", "tree/dir", "tree/dev", "tree/proc", "sources", "build", "outside/sub"} {
		mustDo(t, os.MkdirAll(filepath.Join(base, d), 0o755))
	}
	files := map[string]string{
		"tree/etc/hostname": "kiln\n",
		"tree/dir/secret":   "tree secret\n",
		"sources/file":      "source\n",
		"build/tool":        "tool\n",
		"outside/secret":    hostfstest.Sentinel,
		"outside/sub/other": hostfstest.Sentinel,
	}
	for name, data := range files {
		mustDo(t, os.WriteFile(filepath.Join(base, name), []byte(data), 0o640))
	}
	for _, name := range []string{"outside/secret", "sources/file"} {
		if err := unix.Lsetxattr(filepath.Join(base, name), "user.kiln", []byte(xattrSentinel), 0); err != nil && err != unix.ENOTSUP {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"tree/link":          "dir",
		"tree/planted-abs":   e.outside,
		"tree/planted-up":    "../../../..",
		"tree/planted-rel":   "../outside/secret",
		"sources/esc":        e.outside,
		"sources/up":         "../../../..",
		"sources/rel":        "../outside/secret",
		"build/esc":          e.outside,
		"tree/run-kiln-hint": "/run/kiln/sources/esc",
	}
	for name, target := range links {
		mustDo(t, os.Symlink(target, filepath.Join(base, name)))
	}
	if os.Geteuid() == 0 {
		// Live host devices in the tree, as a stage could leave them.
		mustDo(t, unix.Mknod(filepath.Join(e.tree, "dev/zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
		mustDo(t, unix.Mknod(filepath.Join(e.tree, "dev/host-disk"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
		if attack == "proc" {
			mountProc(t, filepath.Join(e.tree, "proc"))
		}
	}
	e.mounts = []hostfs.Mount{
		{GuestPath: "/", Root: openRoot(t, e.tree, res)},
		{GuestPath: "/run/kiln/sources", Root: openRoot(t, sources, res), ReadOnly: true},
		{GuestPath: "/run/kiln/build", Root: openRoot(t, build, res), ReadOnly: true},
	}
	for _, d := range []string{e.outside, sources, build} {
		e.states = append(e.states, hostfstest.Capture(t, d))
	}
	return e
}

// mountProc puts a procfs in the tree, so that /proc/self/root and
// /proc/self/fd/N are live magic links there, the worst case for a resolver.
func mountProc(t *testing.T, dir string) {
	if err := unix.Mount("proc", dir, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Logf("no procfs in the tree (%v): /proc attacks run against an empty directory", err)
		return
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// startSwapper, for the swap-race attack, swaps tree/link between the tree's
// dir and two ways out for as long as the guest runs.
func (e *escapeEnv) startSwapper(t *testing.T, attack string) (stop func()) {
	if attack != "swap-race" {
		return func() {}
	}
	return hostfstest.SwapSymlink(t, filepath.Join(e.tree, "link"), []string{"dir", e.outside, "../outside", "/dir"})
}

// check proves the host side: the outside directory and the read-only
// inputs are exactly as captured, and nothing appeared beside the tree.
func (e *escapeEnv) check(t *testing.T) {
	t.Helper()
	for _, s := range e.states {
		s.Check(t)
	}
	entries, err := os.ReadDir(e.base)
	mustDo(t, err)
	var names []string
	for _, d := range entries {
		names = append(names, d.Name())
	}
	if want := []string{"build", "outside", "sources", "tree"}; !slices.Equal(names, want) {
		t.Errorf("host: beside the tree there is %v, want %v", names, want)
	}
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
