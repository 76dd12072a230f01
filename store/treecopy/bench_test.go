package treecopy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/store/treecopy"
)

// BenchmarkHardlink measures a hardlink copy (what a hostfs write context
// on ext4 starts from) of a tree of 40,000 files in directories of 20
// against `cp -al` of the same tree in the same run, and reports the ratio
// as treecopy/cp-al. File data does not matter to either: the files are
// empty.
func BenchmarkHardlink(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src")
	for i := range 40000 {
		dir := filepath.Join(src, fmt.Sprintf("usr/d%02d/d%03d", i/2000, i/20%100))
		if i%20 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	scratch := b.TempDir()
	var kiln, cpal time.Duration
	b.ResetTimer()
	for i := range b.N {
		dst := filepath.Join(scratch, "cp"+strconv.Itoa(i))
		start := time.Now()
		if out, err := exec.Command("cp", "-al", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp -al: %v: %s", err, out)
		}
		cpal += time.Since(start)
		dst = filepath.Join(scratch, "kiln"+strconv.Itoa(i))
		shared := map[uint64]uint8{}
		start = time.Now()
		if err := treecopy.Copy(b.Context(), src, dst, treecopy.Options{Mode: treecopy.Hardlink, Shared: shared}); err != nil {
			b.Fatal(err)
		}
		kiln += time.Since(start)
	}
	b.ReportMetric(kiln.Seconds()*1000/float64(b.N), "treecopy-ms")
	b.ReportMetric(cpal.Seconds()*1000/float64(b.N), "cp-al-ms")
	b.ReportMetric(kiln.Seconds()/cpal.Seconds(), "treecopy/cp-al")
}
