package hostfs_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hostfs"
	"golang.org/x/sys/unix"
)

// tarArchives makes testdata/stream's archives: archive.tar.gz and
// truncated.tar.
func tarArchives(t *testing.T, big []byte) map[string][]byte {
	t.Helper()
	write := func(tw *tar.Writer, h *tar.Header, data []byte) {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Unix(1500000000, 0)
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	write(tw, &tar.Header{Typeflag: tar.TypeDir, Name: "dir/", Mode: 0o755, ModTime: mtime}, nil)
	write(tw, &tar.Header{Typeflag: tar.TypeReg, Name: "dir/file", Mode: 0o644, Size: 11, ModTime: mtime}, []byte("hello, tar\n"))
	write(tw, &tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "dir/file", ModTime: mtime}, nil)
	write(tw, &tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644, Size: int64(len(big)), ModTime: mtime}, big)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain.Bytes())
	gw.Close()
	var cut bytes.Buffer
	tw = tar.NewWriter(&cut)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "dir/file", Mode: 0o644, Size: 100, ModTime: mtime}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	cut.WriteString("only 17 of 100 b\n")
	return map[string][]byte{"archive.tar.gz": gz.Bytes(), "truncated.tar": cut.Bytes()}
}

// TestTarABI runs testdata/stream's tar_next and tar_write calls, hostile
// ones included (bad modes, flags, times and pointers, a read-only mount,
// paths out of the tree, members without data, a member written twice, a
// stream read both ways, a truncated archive and one that is no tar), with
// both resolvers, and checks on the host what was written.
func TestTarABI(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB: several copies
	const want = `tar_write before-next 28
tar_next small-buffer 68 84
tar_next dir 0 5 "dir/" 0
tar_write dir-member 28
tar_next file 0 0 "dir/file" 11
tar_write bad-mode 28
tar_write bad-flags 28
tar_write nsec-range 28
tar_write utime-now 28
tar_write efault-sum 21
tar_write read-only 69
tar_write through-abs-symlink 44
tar_write dotdot 44
tar_write ok 0
tar_write md5 %x
tar_write again 28
tar_next link 0 2 "link" 0
tar_write symlink-member 28
tar_next big 0 0 "big" 3145728
tar_write big 0
tar_next end 0 0
tar_next after-end 0 0
stream_read tar-stream 28
tar_next efault-buf 21
tar_next efault-size 21
close 0
tar_next closed 8
tar_write closed 8
tar_next read-stream 28
tar_next not-tar 9 0
stream_error not-tar "tar: unexpected EOF"
tar_next truncated 0 0 "dir/file" 100
tar_write truncated 9
stream_error truncated "tar: unexpected EOF"
tar_next after-error 9 0
`
	if os.Getuid() != 0 {
		t.Skip("needs root: tar_write sets owners")
	}
	r, mod := guest(t, "stream")
	for _, res := range resolvers {
		t.Run(res.String(), func(t *testing.T) {
			base := t.TempDir()
			tree, sources, outside := filepath.Join(base, "tree"), filepath.Join(base, "sources"), filepath.Join(base, "outside")
			for _, d := range []string{tree, sources, outside} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			files := tarArchives(t, big)
			files["plain"] = []byte(streamText)
			for name, b := range files {
				if err := os.WriteFile(filepath.Join(sources, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(outside, filepath.Join(tree, "out")); err != nil {
				t.Fatal(err)
			}
			mounts := []hostfs.Mount{
				{GuestPath: "/", Root: openRoot(t, tree, res)},
				{GuestPath: "/run/kiln/sources", Root: openRoot(t, sources, res), ReadOnly: true},
			}
			stdout, stderr, code := runGuest(t, r, mod, mounts, "stream", "tar")
			if code != 0 {
				t.Fatalf("guest exited %d: %s", code, stderr)
			}
			if w := fmt.Sprintf(want, md5.Sum([]byte("hello, tar\n"))); stdout != w {
				t.Errorf("tar ABI results differ:\n got:\n%s\nwant:\n%s", stdout, w)
			}
			for _, f := range []struct {
				name string
				data []byte
				mode uint32
				uid  uint32
				mtim unix.Timespec
			}{
				{"file", []byte("hello, tar\n"), 0o4755, 1000, unix.Timespec{Sec: 1600000000, Nsec: 500000000}},
				// UTIME_OMIT: the epoch a write leaves, 0 here.
				{"big", big, 0o600, 1000, unix.Timespec{}},
			} {
				p := filepath.Join(tree, f.name)
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					t.Fatal(err)
				}
				if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, f.data) {
					t.Errorf("/%s holds %d bytes (%v), want the member's %d", f.name, len(got), err, len(f.data))
				}
				if st.Mode != unix.S_IFREG|f.mode || st.Uid != f.uid || st.Gid != 1001 || st.Mtim != f.mtim || st.Atim != f.mtim {
					t.Errorf("/%s: mode %o owner %d:%d mtime %v atime %v", f.name, st.Mode, st.Uid, st.Gid, st.Mtim, st.Atim)
				}
			}
			// The truncated member's file is left as a failed write_file
			// leaves one: 0600 at the epoch, holding what there was.
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(tree, "cut"), &st); err != nil || st.Mode != unix.S_IFREG|0o600 || st.Mtim != (unix.Timespec{}) {
				t.Errorf("/cut: %v mode %o mtime %v", err, st.Mode, st.Mtim)
			}
			for _, name := range []string{"x", "file2"} {
				if _, err := os.Lstat(filepath.Join(tree, name)); !os.IsNotExist(err) {
					t.Errorf("/%s exists (%v): a refused tar_write made it", name, err)
				}
			}
			ents, err := os.ReadDir(outside)
			if err != nil || len(ents) != 0 {
				t.Errorf("outside the tree: %v %v", ents, err)
			}
		})
	}
}
