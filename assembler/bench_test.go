package assembler

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchTree is a tree like a small OS image: 3,000 files, mostly
// compressible text, 200 of them 256 KiB of pseudo-random bytes.
func benchTree(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	text := []byte(strings.Repeat("kiln builds images from a manifest; ", 300)) // ~11 KB
	x := uint64(1)
	random := func() []byte { // xorshift: each call gives new bytes
		p := make([]byte, 256<<10)
		for i := range p {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			p[i] = byte(x)
		}
		return p
	}
	for d := range 100 {
		sub := filepath.Join(dir, fmt.Sprintf("usr/share/pkg%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 30 {
			content := text
			if f%15 == 0 {
				content = random()
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprint("f", f)), content, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return dir
}

// BenchmarkTar compares the tar assembler with GNU tar piped into the
// compressor, on the same tree in the same run, and reports the ratio
// (below 1: kiln is faster).
func BenchmarkTar(b *testing.B) {
	tree := benchTree(b)
	for _, tc := range []struct{ compression, shell string }{
		// The assembler fsyncs its output before it is committed; the
		// baseline does too (sync FILE), so both pay for durability.
		{"zstd", "tar -C %[1]s -cf - . | zstd -T0 -q -o %[2]s && sync %[2]s"},
		{"gzip", "tar -C %[1]s -cf - . | gzip > %[2]s && sync %[2]s"},
	} {
		b.Run(tc.compression, func(b *testing.B) {
			if _, err := exec.LookPath(tc.compression); err != nil {
				b.Skipf("needs %s", tc.compression)
			}
			a, _ := lookup("org.osbuild.tar")
			var kiln, gnu time.Duration
			var kilnSize, gnuSize int64
			for i := 0; b.Loop(); i++ {
				out := b.TempDir()
				start := time.Now()
				err := a.Assemble(b.Context(), Input{Tree: tree, Output: out,
					Options: json.RawMessage(`{"filename": "t", "compression": "` + tc.compression + `"}`)})
				kiln += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				dst := filepath.Join(out, "gnu")
				start = time.Now()
				if o, err := exec.Command("sh", "-c", fmt.Sprintf(tc.shell, tree, dst)).CombinedOutput(); err != nil {
					b.Fatalf("%v %s", err, o)
				}
				gnu += time.Since(start)
				kilnSize, gnuSize = fileSize(b, filepath.Join(out, "t")), fileSize(b, dst)
			}
			b.ReportMetric(kiln.Seconds()*1e3/float64(b.N), "kiln-ms/op")
			b.ReportMetric(gnu.Seconds()*1e3/float64(b.N), "gnu-ms/op")
			b.ReportMetric(kiln.Seconds()/gnu.Seconds(), "kiln/gnu")
			b.ReportMetric(float64(kilnSize)/float64(gnuSize), "size-kiln/gnu")
		})
	}
}

func fileSize(b *testing.B, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}
