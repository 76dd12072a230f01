package hostfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzResolve feeds raw guest paths, "..", slashes, NULs and all, to both
// resolvers over a tree full of hostile symlinks, and checks that whatever
// they open is inside the tree (by the kernel's own name for the descriptor)
// and that the two resolvers agree on what a path names.
func FuzzResolve(f *testing.F) {
	base := f.TempDir()
	tree, outside := filepath.Join(base, "tree"), filepath.Join(base, "outside")
	for _, d := range []string{"tree/a/b/c", "tree/etc", "outside/sub"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for name, data := range map[string]string{"tree/etc/hostname": "kiln", "outside/secret": "host"} {
		if err := os.WriteFile(filepath.Join(base, name), []byte(data), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"esc":        outside,
		"up":         "../../..",
		"rel":        "../outside/secret",
		"abs":        "/a/b",
		"dot":        ".",
		"self":       "self",
		"a/b/parent": "../..",
		"a/b/c/top":  "/",
		"a/b/c/out":  "../../../../outside",
		"etc/lt":     "/etc/hostname",
		"etc/file":   "hostname/x",
		"empty":      "a/b/c/../../../../../../outside/sub",
	} {
		if err := os.Symlink(target, filepath.Join(tree, name)); err != nil {
			f.Fatal(err)
		}
	}
	roots := map[string]*Root{}
	for _, res := range []Resolver{ResolveOpenat2, ResolveUserspace} {
		r, err := OpenRoot(tree, WithResolver(res))
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = r.Close() })
		roots[res.String()] = r
	}
	treeReal, err := filepath.EvalSymlinks(tree)
	if err != nil {
		f.Fatal(err)
	}

	for _, seed := range []string{
		"", ".", "..", "/", "../../..", "esc/secret", "up/outside/secret", "rel",
		"abs/c/top/esc", "dot/dot/up/etc/lt", "self", "a/b/parent/esc",
		"a/b/c/out/secret", "etc/file", "etc/lt/", "a//b///c/./../c/top",
		"empty/../secret", "a/b/c/top/../../..", "esc\x00/x", "/proc/self/root",
		strings.Repeat("../", 50) + "etc/hostname", strings.Repeat("dot/", 60) + "etc",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, p string, follow bool) {
		if checkPath(p) != nil {
			return // refused before any resolver sees it, as every Root operation does
		}
		type result struct {
			dev, ino uint64
			err      error
		}
		var results []result
		for name, r := range roots {
			var fd int
			var err error
			if r.resolver == ResolveOpenat2 {
				fd, err = resolveOpenat2(r.fd, p, follow, false)
			} else {
				fd, err = resolveWalk(r.fd, r.mount, p, follow, false)
			}
			if err != nil {
				results = append(results, result{err: err})
				continue
			}
			real, rerr := os.Readlink(procFd(fd))
			var st unix.Stat_t
			serr := unix.Fstat(fd, &st)
			closeFd(fd)
			if rerr != nil || serr != nil {
				t.Fatalf("%s: resolved %q, then: %v, %v", name, p, rerr, serr)
			}
			if real != treeReal && !strings.HasPrefix(real, treeReal+"/") {
				t.Fatalf("%s: %q (follow %v) resolved to %s, outside the tree %s", name, p, follow, real, treeReal)
			}
			results = append(results, result{dev: st.Dev, ino: st.Ino})
		}
		if a, b := results[0], results[1]; a != b {
			t.Errorf("resolvers disagree on %q (follow %v): %+v vs %+v", p, follow, a, b)
		}
	})
}
