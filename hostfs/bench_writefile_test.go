package hostfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkWriteFile makes 20,000 files of 4 KiB in 20 directories with
// write_file (owner, mode and mtime given, as untar gives them) and, in
// the same iterations, natively with open, write, fchown, fchmod,
// futimens and close, which does no confinement and no journal. us/file
// is write_file's; x-native is the ratio. Set TMPDIR to a filesystem that
// has not just seen many deletions: a journal-less ext4 charges them to
// every new inode (docs/hostfs.md).
func BenchmarkWriteFile(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root: the files get owners")
	}
	const files = 20000
	data := make([]byte, 4096)
	mtime := unix.Timespec{Sec: 1704067200}
	fresh := func() string {
		tree := b.TempDir()
		for d := range 20 {
			if err := os.Mkdir(filepath.Join(tree, fmt.Sprint(d)), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		return tree
	}
	var kiln, native time.Duration
	for range b.N {
		tree := fresh()
		r, err := OpenRoot(tree)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for i := range files {
			if err := r.writeFile(fmt.Sprintf("%d/f%d", i%20, i), data, writeReplace, 0o644, 1000, 1000, mtime); err != nil {
				b.Fatal(err)
			}
		}
		kiln += time.Since(start)
		r.Close()

		tree = fresh()
		start = time.Now()
		for i := range files {
			f, err := os.OpenFile(filepath.Join(tree, fmt.Sprint(i%20), fmt.Sprintf("f%d", i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			fd := int(f.Fd())
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			ts := [2]unix.Timespec{mtime, mtime}
			if err := unix.Fchown(fd, 1000, 1000); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fchmod(fd, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := futimens(fd, &ts); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		native += time.Since(start)
	}
	b.ReportMetric(float64(kiln.Microseconds())/float64(b.N*files), "us/file")
	b.ReportMetric(kiln.Seconds()/native.Seconds(), "x-native")
	b.ReportMetric(0, "ns/op") // the pair is timed, not one op
}
