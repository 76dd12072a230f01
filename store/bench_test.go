package store_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/treesum"
)

// benchTree makes a tree shaped like a small OS image: 5,000 files in 250
// directories, mostly small, a few of 1 MiB, with some symlinks.
func benchTree(b *testing.B, dir string) {
	b.Helper()
	small := []byte(strings.Repeat("kiln ", 400)) // 2 KB
	big := []byte(strings.Repeat("0123456789abcdef", 1<<16))
	for d := range 250 {
		sub := filepath.Join(dir, fmt.Sprintf("usr/lib/pkg%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 20 {
			content := small
			if f == 0 && d%25 == 0 {
				content = big
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%02d", f)), content, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.Symlink("file00", filepath.Join(sub, "link")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInitFromBase times making a writable object from a committed
// base of 5,000 files next to `cp -a` of the same tree, measured in the same
// run, and reports the ratio (below 1 means kiln is faster).
func BenchmarkInitFromBase(b *testing.B) {
	for _, mode := range []store.CopyMode{store.CopyAuto, store.CopyPlain} {
		b.Run(mode.String(), func(b *testing.B) {
			ctx := b.Context()
			st, err := store.Open(ctx, b.TempDir(), store.WithCopyMode(mode))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			obj, err := st.New(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			w, _ := obj.Write(ctx)
			benchTree(b, w.Path())
			w.Close()
			if _, err := st.Commit(ctx, obj, "base"); err != nil {
				b.Fatal(err)
			}
			obj.Close()
			r, err := st.Get(ctx, "base")
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			scratch := b.TempDir()

			var cpTime, kilnTime time.Duration
			b.ResetTimer()
			for i := range b.N {
				dst := filepath.Join(scratch, fmt.Sprint(i))
				start := time.Now()
				if out, err := exec.Command("cp", "-a", r.Path(), dst).CombinedOutput(); err != nil {
					b.Fatalf("cp -a: %v %s", err, out)
				}
				cpTime += time.Since(start)

				start = time.Now()
				o, err := st.New(ctx, "base")
				if err != nil {
					b.Fatal(err)
				}
				w, err := o.Write(ctx)
				if err != nil {
					b.Fatal(err)
				}
				kilnTime += time.Since(start)
				b.StopTimer()
				w.Close()
				o.Close()
				os.RemoveAll(dst)
				b.StartTimer()
			}
			b.ReportMetric(float64(kilnTime.Milliseconds())/float64(b.N), "kiln-ms/op")
			b.ReportMetric(float64(cpTime.Milliseconds())/float64(b.N), "cp-a-ms/op")
			b.ReportMetric(kilnTime.Seconds()/cpTime.Seconds(), "kiln/cp-a")
		})
	}
}

// BenchmarkCommit times hashing and committing a freshly written tree of
// 5,000 files.
func BenchmarkCommit(b *testing.B) {
	ctx := b.Context()
	st, err := store.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := range b.N {
		b.StopTimer()
		obj, err := st.New(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		w, _ := obj.Write(ctx)
		benchTree(b, w.Path())
		os.WriteFile(filepath.Join(w.Path(), "unique"), []byte(fmt.Sprint(i)), 0o644)
		w.Close()
		b.StartTimer()
		if _, err := st.Commit(ctx, obj, fmt.Sprint("c", i)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		obj.Close()
		b.StartTimer()
	}
}

// BenchmarkCheckOnUse times the check every use of a committed tree of
// 5,000 files makes (its stat digest) next to the full treesum that check
// replaces, and reports their ratio; Get checks it once more on the way.
func BenchmarkCheckOnUse(b *testing.B) {
	ctx := b.Context()
	st, err := store.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	obj, err := st.New(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	w, _ := obj.Write(ctx)
	benchTree(b, w.Path())
	w.Close()
	sum, err := st.Commit(ctx, obj, "base")
	if err != nil {
		b.Fatal(err)
	}
	obj.Close()
	tree := filepath.Join(st.Root(), "objects", sum)
	var checkTime, sumTime time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := store.StatDigest(ctx, tree, false); err != nil {
			b.Fatal(err)
		}
		checkTime += time.Since(start)
		start = time.Now()
		if got, err := treesum.Sum(ctx, tree); err != nil || got != sum {
			b.Fatal(got, err)
		}
		sumTime += time.Since(start)
	}
	b.StopTimer()
	r, err := st.Get(ctx, "base")
	if err != nil {
		b.Fatal(err)
	}
	r.Close()
	if store.FullChecks(st) != 0 {
		b.Fatal("the check on use hashed the tree")
	}
	b.ReportMetric(float64(checkTime.Microseconds())/float64(b.N)/1000, "check-ms/op")
	b.ReportMetric(float64(sumTime.Microseconds())/float64(b.N)/1000, "treesum-ms/op")
	b.ReportMetric(checkTime.Seconds()/sumTime.Seconds(), "check/treesum")
}
