package library

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// untarBenchFiles is the number of files in the generated tree; the issue
// asks for about 40,000 in about 1 GB. KILN_UNTAR_BENCH_FILES scales it down
// for a quick look (the sizes scale with it).
func untarBenchFiles() int {
	if n, err := strconv.Atoi(os.Getenv("KILN_UNTAR_BENCH_FILES")); err == nil && n > 0 {
		return n
	}
	return 40000
}

// genVersion names the generator's output in the cache: change it when
// genTree changes.
const genVersion = "v1"

// genTree writes a deterministic tree of n regular files in n/20
// directories, with a few symlinks and hard links, sizes spread as in an OS
// tree (most files a few KiB, a long tail, and four big files that hold
// about a third of the bytes) and content that gzip compresses about 3:1,
// as binaries and text do: n=40,000 makes about 1 GB.
func genTree(dir string, n int) error {
	rng := rand.New(rand.NewPCG(14, uint64(n)))
	words := make([]string, 512)
	for i := range words {
		b := make([]byte, 2+rng.IntN(9))
		for j := range b {
			b[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(b)
	}
	// A pool of text with some random bytes in it; files are slices of it.
	var pool []byte
	for len(pool) < 8<<20 {
		if rng.IntN(8) == 0 {
			for range 16 {
				pool = append(pool, byte(rng.Uint32()))
			}
		}
		pool = append(pool, words[rng.IntN(len(words))]...)
		pool = append(pool, ' ')
	}
	chunk := func(w io.Writer, size int) error {
		for size > 0 {
			off := rng.IntN(len(pool) - 1)
			k := min(size, len(pool)-off, 1<<20)
			if _, err := w.Write(pool[off : off+k]); err != nil {
				return err
			}
			size -= k
		}
		return nil
	}
	ndirs := max(n/20, 1)
	dirs := make([]string, ndirs)
	for i := range dirs {
		d := fmt.Sprintf("d%03d", i%50)
		if i >= 50 {
			d = filepath.Join(d, fmt.Sprintf("sub%04d", i))
		}
		dirs[i] = d
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	bigSize := n * (2 << 10) // 4 of them: a third of ~1 GB at 40,000
	for i := range n {
		p := filepath.Join(dir, dirs[i%ndirs], fmt.Sprintf("f%05d", i))
		size := int(rng.ExpFloat64() * (16 << 10))
		if i < 4 {
			size = bigSize
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		err = chunk(bw, size)
		if err == nil {
			err = bw.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		switch i % 100 {
		case 1:
			err = os.Chmod(p, 0o755)
		case 2:
			err = os.Symlink(filepath.Base(p), p+".link")
		case 3:
			err = os.Link(p, p+".hard")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// benchArchive is one archive both tar and kiln unpack.
type benchArchive struct {
	name, path string
}

// untarArchives returns the generated tree as .tar and .tar.gz, made once
// and kept under ~/.cache/kiln-test, and the Debian tarball if one is
// there (KILN_DEBIAN_TARBALL, or debian.tar.gz in that cache, e.g. made
// from a debootstrapped tree with tar --numeric-owner --xattrs -czf).
func untarArchives(b *testing.B) []benchArchive {
	home, err := os.UserHomeDir()
	if err != nil {
		b.Fatal(err)
	}
	cache := filepath.Join(home, ".cache", "kiln-test", "untar-bench")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		b.Fatal(err)
	}
	n := untarBenchFiles()
	base := filepath.Join(cache, fmt.Sprintf("gen-%s-%d", genVersion, n))
	if _, err := os.Stat(base + ".tar.gz"); err != nil {
		src := base + ".src"
		_ = os.RemoveAll(src)
		if err := genTree(src, n); err != nil {
			b.Fatal(err)
		}
		for _, c := range [][]string{
			{"tar", "--numeric-owner", "--xattrs", "-cf", base + ".tar.part", "-C", src, "."},
			{"sh", "-c", `gzip -c "$1.tar.part" > "$1.tar.gz.part"`, "sh", base},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", c, err, out)
			}
		}
		_ = os.RemoveAll(src)
		for _, ext := range []string{".tar", ".tar.gz"} {
			if err := os.Rename(base+ext+".part", base+ext); err != nil {
				b.Fatal(err)
			}
		}
	}
	archives := []benchArchive{
		{fmt.Sprintf("generated-%d/tar", n), base + ".tar"},
		{fmt.Sprintf("generated-%d/tar.gz", n), base + ".tar.gz"},
	}
	deb := os.Getenv("KILN_DEBIAN_TARBALL")
	if deb == "" {
		deb = filepath.Join(cache, "debian.tar.gz")
	}
	if _, err := os.Stat(deb); err == nil {
		// Uncompressed too, to tell the cost of decompressing from that
		// of making the files.
		key := sha256.Sum256([]byte(deb))
		plain := filepath.Join(cache, "debian-"+hex.EncodeToString(key[:8])+".tar")
		if _, err := os.Stat(plain); err != nil {
			c := exec.Command("sh", "-c", `gzip -dc "$1" > "$2.part" && mv "$2.part" "$2"`, "sh", deb, plain)
			if out, err := c.CombinedOutput(); err != nil {
				b.Fatalf("gzip -d %s: %v\n%s", deb, err, out)
			}
		}
		archives = append(archives, benchArchive{"debian/tar", plain}, benchArchive{"debian/tar.gz", deb})
	}
	return archives
}

// sourcesFor makes a sources directory holding archive as the
// org.osbuild.files source of its sha256, as the store hands it to a stage,
// linked rather than copied so the archive is read from the same disk by
// both tars.
func sourcesFor(b *testing.B, archive string) (dir, sum string) {
	f, err := os.Open(archive)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	sum = "sha256:" + hex.EncodeToString(h.Sum(nil))
	dir = b.TempDir()
	files := filepath.Join(dir, "org.osbuild.files")
	if err := os.Mkdir(files, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Link(archive, filepath.Join(files, sum)); err != nil {
		if err := exec.Command("cp", archive, filepath.Join(files, sum)).Run(); err != nil {
			b.Fatal(err)
		}
	}
	return dir, sum
}

// BenchmarkUntar unpacks each archive with org.osbuild.untar and with GNU
// tar (-xf, which runs gzip -d beside itself for a .gz, --numeric-owner
// --xattrs, as root keeping owners and modes), in turns in the same run,
// into new directories on the same disk. Each is timed from start to
// exit, after a sync. The metric
// kiln/gnu-tar is kiln's time over tar's (the goal: at most 1.2).
// freshExt4 returns a directory on a new ext4 filesystem made with
// mkfs.ext4's defaults (a journal, as users' ext4 has), in a sparse image
// on the disk of $TMPDIR behind a direct-I/O loop device, unmounted and
// detached when b ends. On the journal-less ext4
// of the machines here, every inode created within minutes of many
// deletions (a previous benchmark's, a test's) scans past each deleted one:
// GNU tar's 1 GB took 4 s or 14 s by what ran before, which hid kiln's own
// cost in the ratio. Where no filesystem can be mounted, b.TempDir().
func freshExt4(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil || os.Getuid() != 0 {
		b.Logf("on %s: mounting a fresh ext4 needs root and mkfs.ext4", dir)
		return dir
	}
	img, mnt := filepath.Join(dir, "ext4.img"), filepath.Join(dir, "mnt")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(img, 12<<30); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		b.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	// Direct I/O from the loop device to the image: with the default
	// buffered loop every block written is cached twice (the filesystem's
	// page and the image file's) and copied by a kworker, which here took
	// a seventh of both cores and made the same 30,000 small files take
	// 0.9 s or 3.0 s from one run to the next (0.66-0.92 s with direct I/O).
	out, err := exec.Command("losetup", "--direct-io=on", "--find", "--show", img).Output()
	if err != nil {
		b.Logf("on %s: cannot attach a loop device here: %v", dir, err)
		return dir
	}
	dev := strings.TrimSpace(string(out))
	b.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			b.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		b.Logf("on %s: cannot mount an ext4 image here: %v %s", dir, err, out)
		return dir
	}
	b.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			b.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

func BenchmarkUntar(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root: the trees keep owners and modes as an image build does")
	}
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("needs GNU tar: it is the baseline")
	}
	stages, _ := builtLibrary(b)
	st := stages["org.osbuild.untar"]
	mod := engine.NewModule(st.Module)
	for _, a := range untarArchives(b) {
		b.Run(a.name, func(b *testing.B) {
			sources, sum := sourcesFor(b, a.path)
			e := newEngine(b)
			work := freshExt4(b)
			opts := []byte(fmt.Sprintf(`{"source":%q}`, sum))
			// Every run gets a new directory, and none is removed before
			// the sub-benchmark ends: on ext4 without a journal, creating
			// inodes just after many were deleted scans past each recently
			// deleted one (recently_deleted in perf), which would charge
			// a removal to whoever runs next (freshExt4).
			runs := 0
			fresh := func(name string) string {
				runs++
				d := filepath.Join(work, fmt.Sprintf("%s-%d", name, runs))
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
				if err := exec.Command("sync").Run(); err != nil {
					b.Fatal(err)
				}
				return d
			}
			runTar := func() time.Duration {
				dir := fresh("tar")
				start := time.Now()
				cmd := exec.Command("tar", "--numeric-owner", "--xattrs", "-xf", a.path, "-C", dir)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("tar: %v\n%s", err, out)
				}
				return time.Since(start)
			}
			runKiln := func() time.Duration {
				dir := fresh("kiln")
				start := time.Now()
				res, err := e.Run(context.Background(), engine.Invocation{
					Name: st.Name, ID: strings.Repeat("14", 32), Module: mod, Options: opts,
					Tree: dir, Sources: sources, Epoch: goldenEpoch,
				})
				if err != nil {
					b.Fatalf("%v\n%s", err, res.Log)
				}
				return time.Since(start)
			}
			// Before timing: the module compiles (a stage of the same
			// module that does nothing), the archive is read into the page
			// cache as both tars will find it.
			noop := stages["org.osbuild.noop"]
			if res, err := e.Run(context.Background(), engine.Invocation{
				Name: noop.Name, ID: strings.Repeat("41", 32), Module: engine.NewModule(noop.Module),
				Options: []byte("{}"), Tree: fresh("kiln"), Epoch: goldenEpoch,
			}); err != nil {
				b.Fatalf("%v\n%s", err, res.Log)
			}
			if err := exec.Command("cat", a.path).Run(); err != nil {
				b.Fatal(err)
			}
			// The two take turns at going first: on these VMs a write's
			// page cache comes fast or slow by what the hypervisor did with
			// the free memory it is taken from (free page reporting), and
			// whoever wrote first got the faster pages.
			var kiln, tar time.Duration
			first := true
			for b.Loop() {
				if first {
					tar += runTar()
					kiln += runKiln()
				} else {
					kiln += runKiln()
					tar += runTar()
				}
				first = !first
			}
			b.ReportMetric(kiln.Seconds()/float64(b.N), "kiln-s/op")
			b.ReportMetric(tar.Seconds()/float64(b.N), "tar-s/op")
			b.ReportMetric(kiln.Seconds()/tar.Seconds(), "kiln/gnu-tar")
			b.ReportMetric(0, "ns/op") // the whole pair is timed, not one op
		})
	}
}
