package hostfs_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hostfs"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// BenchmarkWalk walks and lstats a tree of 5,050 entries through hostfs and,
// in the same iterations with the timer stopped, through wazero's own DirFS,
// which does no confinement at all. ns/op is hostfs's; x-DirFS is the ratio.
func BenchmarkWalk(b *testing.B) {
	tree := b.TempDir()
	for d := range 50 {
		dir := filepath.Join(tree, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	dirfs := sysfs.DirFS(tree)
	for _, res := range []hostfs.Resolver{hostfs.ResolveOpenat2, hostfs.ResolveUserspace} {
		b.Run(res.String(), func(b *testing.B) {
			root, err := hostfs.OpenRoot(tree, hostfs.WithResolver(res))
			if err != nil {
				b.Fatal(err)
			}
			defer root.Close()
			fsys := root.FS()
			var base time.Duration
			for b.Loop() {
				if n := walk(b, fsys, "."); n != 5050 {
					b.Fatalf("walked %d entries, want 5050", n)
				}
				b.StopTimer()
				start := time.Now()
				walk(b, dirfs, ".")
				base += time.Since(start)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed())/float64(base), "x-DirFS")
		})
	}
}

func walk(b *testing.B, fsys experimentalsys.FS, dir string) int {
	f, errno := fsys.OpenFile(dir, experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	if errno != 0 {
		b.Fatalf("open %s: %v", dir, errno)
	}
	entries, errno := f.Readdir(-1)
	f.Close()
	if errno != 0 {
		b.Fatalf("readdir %s: %v", dir, errno)
	}
	n := 0
	for _, e := range entries {
		p := path.Join(dir, e.Name)
		st, errno := fsys.Lstat(p)
		if errno != 0 {
			b.Fatalf("lstat %s: %v", p, errno)
		}
		n++
		if st.Mode.IsDir() {
			n += walk(b, fsys, p)
		}
	}
	return n
}
