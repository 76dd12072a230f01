package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFullDisk is the full-disk suite of issue 10: with the store on a small
// tmpfs and on a small loop-mounted ext4, a ballast file leaves too little
// room for one step at a time, a fetch of a file:// source, a stage, the tar
// assembler's output and the export to a full --output-directory. (The stage
// after a checkpoint starts from a hardlinked tree that costs no data blocks:
// the "checkpoint" case checks that it builds with less room than one copy.) Each must fail with "no space left
// on device" and the path it was writing (a stage used to say "input/output
// error": issue 10 item 15), leave nothing behind (tmp/ empty, fsck clean, no
// partial output), and succeed once the ballast is gone.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs and a loop-mounted ext4")
	}
	if testing.Short() {
		t.Skip("-short: the full-disk suite runs about 30 builds")
	}
	// The first store's compiled-module cache, kept for the next store:
	// compiling the stage library takes longer than the rest of a run.
	warmCache := filepath.Join(t.TempDir(), "cache")
	for _, kind := range []string{"tmpfs", "ext4"} {
		t.Run(kind, func(t *testing.T) {
			// 160 MiB: the compiled stage library (the store's module
			// cache, copied in) takes most of it; the ballast leaves the
			// rest as each case needs.
			disk := mountSmallFS(t, kind, 160)
			store := filepath.Join(disk, "store")
			if _, err := os.Stat(warmCache); err == nil {
				// The cache is the store's own business: should its layout
				// change, the store just compiles again.
				if err := os.CopyFS(filepath.Join(store, "cache"), os.DirFS(warmCache)); err != nil {
					t.Log("copying the module cache:", err)
				}
			}
			srcDir := t.TempDir()
			small := randomSource(t, srcDir, "small", 3<<20)
			large := randomSource(t, srcDir, "large", 5<<20)
			out := t.TempDir()
			copyTo := func(src source, paths ...string) string {
				var files []string
				for _, p := range paths {
					files = append(files, fmt.Sprintf(`{"source": %q, "path": %q}`, src.sum, p))
				}
				return `{"name": "kiln.copy", "options": {"files": [` + strings.Join(files, ", ") + `]}}`
			}
			manifest := func(src source, stages, assembler string) string {
				doc := `{"pipeline": {"stages": [` + stages + `]` + assembler + `},
				  "sources": {"org.osbuild.files": {"urls": {"` + src.sum + `": "` + src.url + `"}}}}`
				return writeManifest(t, doc)
			}
			tar := `, "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar"}}`

			// Warm up: the module cache must not be what runs out.
			warm := writeManifest(t, `{"pipeline": {"stages": [
			  {"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/etc"}]}},
			  {"name": "org.osbuild.machine-id", "options": {"first-boot": "no"}}]}}`)
			if br, r := build(t, store, out, warm); !br.Success {
				t.Fatalf("warm-up build: exit %d\n%s", r.code, r.stderr)
			}
			if _, err := os.Stat(warmCache); err != nil {
				if err := os.CopyFS(warmCache, os.DirFS(filepath.Join(store, "cache"))); err != nil {
					t.Log("keeping the module cache:", err)
				}
			}

			outDisk := mountSmallFS(t, kind, 16)
			type fullCase struct {
				name     string
				manifest string
				args     []string
				ballast  string // the filesystem to fill
				free     int64  // bytes left free there
				out      string
				want     *regexp.Regexp // besides "no space left on device"
				tar      bool           // the build outputs root.tar
				fits     bool           // the build must succeed in the room left
			}
			cases := []fullCase{
				{"fetch", manifest(large, copyTo(large, "/f"), ""), nil, disk, 3 << 20, out,
					regexp.MustCompile(`file://` + regexp.QuoteMeta(large.path) + `: .*write ` + regexp.QuoteMeta(store) + `/tmp/\S+: no space left on device`), false, false},
				{"stage", manifest(small, copyTo(small, "/a", "/b", "/c"), ""), nil, disk, 5 << 20, out,
					regexp.MustCompile(`kiln\.copy: option "files\[\d\]\.path": write /[abc]: no space left on device`), false, false},
				// 6 MiB of files with 8 MiB free: a full copy of the
				// checkpoint for the next stage would not fit, hardlinks do.
				{"checkpoint", manifest(small, copyTo(small, "/a", "/b")+`, {"name": "org.osbuild.noop"}`, ""),
					[]string{"--checkpoint", "kiln.copy"}, disk, 8 << 20, out, nil, false, true},
				{"assembler", manifest(small, copyTo(small, "/x", "/y"), tar), nil, disk, 9 << 20, out,
					regexp.MustCompile(`org\.osbuild\.tar: writing root\.tar: .*write ` + regexp.QuoteMeta(store) + `/tmp/\S+/root\.tar: no space left on device`), true, false},
				// The same build, now stored whole: only the export runs.
				{"export", manifest(small, copyTo(small, "/x", "/y"), tar), nil, outDisk, 3 << 20, filepath.Join(outDisk, "out"),
					regexp.MustCompile(`exporting \S+ to ` + regexp.QuoteMeta(outDisk) + `/out/\S+: .*root\.tar: no space left on device`), true, false},
			}
			if kind == "tmpfs" {
				// A stage of the Rust SDK writing 14 bytes to a disk with
				// none left. Only on tmpfs, where directories take no
				// blocks: ext4 would fail making the tree, before the stage. One page
				// is left: hostfs's journal of the tree's first change takes it.
				cases = append(cases, fullCase{"rust stage", writeManifest(t, `{"pipeline": {"stages": [
				  {"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/etc"}]}},
				  {"name": "org.osbuild.machine-id", "options": {"first-boot": "yes"}}]}}`), nil, disk, 4096, out,
					regexp.MustCompile(`org\.osbuild\.machine-id: /etc/machine-id: no space left on device`), false, false})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ballast := fillDisk(t, c.ballast, c.free)
					br, r := build(t, store, c.out, c.manifest, c.args...)
					msg := br.Error + "\n" + r.stderr
					if c.fits {
						if r.code != 0 || !br.Success {
							t.Fatalf("build with %d bytes free: exit %d; want success\n%s", c.free, r.code, msg)
						}
						assertStoreClean(t, store)
						if err := os.Remove(ballast); err != nil {
							t.Fatal(err)
						}
						return
					}
					if r.code != 1 || br.Success {
						t.Fatalf("build on a full disk: exit %d, success %v; want 1\n%s", r.code, br.Success, msg)
					}
					if !strings.Contains(br.Error, "no space left on device") || !c.want.MatchString(br.Error) {
						t.Errorf("error %q\nwant \"no space left on device\" and %s", br.Error, c.want)
					}
					if strings.Contains(msg, "input/output error") || strings.Contains(msg, "I/O error") {
						t.Errorf("a full disk is reported as an I/O error:\n%s", msg)
					}
					assertStoreClean(t, store)
					if leftovers, _ := os.ReadDir(c.out); len(leftovers) != 0 {
						t.Errorf("the output directory holds %v after the failure", names(leftovers))
					}

					if err := os.Remove(ballast); err != nil {
						t.Fatal(err)
					}
					br, r = build(t, store, c.out, c.manifest, c.args...)
					if r.code != 0 || !br.Success {
						t.Fatalf("retry with room: exit %d\n%s%s", r.code, br.Error, r.stderr)
					}
					assertStoreClean(t, store)
					if c.tar {
						if st, err := os.Stat(filepath.Join(c.out, "root.tar")); err != nil || st.Size() < 6<<20 {
							t.Errorf("retry's root.tar: %v, %v", st, err)
						}
						if err := os.Remove(filepath.Join(c.out, "root.tar")); err != nil {
							t.Error(err)
						}
					}
				})
			}
		})
	}
}

type source struct{ path, url, sum string }

// randomSource writes size random bytes, which no filesystem can compress or
// share, and returns the file:// source for them.
func randomSource(t *testing.T, dir, name string, size int64) source {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return source{p, "file://" + p, "sha256:" + hex.EncodeToString(h.Sum(nil))}
}

// mountSmallFS mounts a fresh filesystem of sizeMiB: a tmpfs, or an ext4 in
// a loop-mounted image (no reserved blocks, which root could otherwise
// spend past "full").
func mountSmallFS(t *testing.T, kind string, sizeMiB int) string {
	t.Helper()
	dir := t.TempDir()
	switch kind {
	case "tmpfs":
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0755", sizeMiB)); err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
	case "ext4":
		img := filepath.Join(t.TempDir(), "disk.img")
		for _, args := range [][]string{
			{"truncate", "-s", fmt.Sprintf("%dM", sizeMiB), img},
			{"mkfs.ext4", "-q", "-F", "-m", "0", img},
			{"mount", "-o", "loop", img, dir},
		} {
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
		}
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a ballast file on the filesystem of dir so that free
// bytes are left, and returns its path.
func fillDisk(t *testing.T, dir string, free int64) string {
	t.Helper()
	p := filepath.Join(dir, "ballast")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*st.Bsize - free
	if n < 0 {
		t.Fatalf("%s has only %d bytes free, want to leave %d", dir, int64(st.Bavail)*st.Bsize, free)
	}
	if _, err := io.CopyN(f, zeroReader{}, n); err != nil {
		t.Fatalf("ballast: %v", err)
	}
	// ext4 counts delayed allocations, but make the blocks real anyway.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return p
}

// zeroReader is /dev/zero without opening it.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
