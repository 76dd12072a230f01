package hostfs_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kilnbuild/kiln/hostfs"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

const streamText = "hello, stream: decompressed by the host\n"

// compressed returns streamText in each format, made with the libraries the
// host reads them with except bzip2, which Go cannot write: the bzip2 tool
// makes that one.
func compressed(t *testing.T) map[string][]byte {
	t.Helper()
	var gz, x, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write([]byte(streamText))
	gw.Close()
	xw, err := xz.NewWriter(&x)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write([]byte(streamText))
	xw.Close()
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte(streamText))
	zw.Close()
	out := map[string][]byte{"hello.gz": gz.Bytes(), "hello.xz": x.Bytes(), "hello.zst": zs.Bytes(), "plain": []byte(streamText)}
	if _, err := exec.LookPath("bzip2"); err != nil {
		t.Skip("needs the bzip2 tool to make a bzip2 file: " + err.Error())
	}
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = bytes.NewReader([]byte(streamText))
	bz, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	out["hello.bz2"] = bz
	return out
}

// TestStreamABI runs testdata/stream, which calls stream_open, stream_read,
// stream_error and stream_close with raw arguments against every format and
// hostile paths, lengths and pointers, and compares its lines with the ABI
// in docs/hostfs.md: 0 ok, 8 EBADF, 9 EBADMSG (bad data), 21 EFAULT,
// 28 EINVAL, 31 EISDIR, 33 EMFILE, 37 ENAMETOOLONG, 44 ENOENT. A gzip file
// outside the roots, reachable by a planted symlink on the host, is never
// read.
func TestStreamABI(t *testing.T) {
	const want = `read hello.gz 0 0 "hello, stream: decompressed by the host\n"
close 0
read hello.xz 0 0 "hello, stream: decompressed by the host\n"
close 0
read hello.zst 0 0 "hello, stream: decompressed by the host\n"
close 0
read hello.bz2 0 0 "hello, stream: decompressed by the host\n"
close 0
read plain 0 0 "hello, stream: decompressed by the host\n"
close 0
read hello.gz 2 0 "hello, stream: decompressed by the host\n"
close 0
read hello.xz 3 0 "hello, stream: decompressed by the host\n"
close 0
read hello.zst 4 0 "hello, stream: decompressed by the host\n"
close 0
read hello.bz2 5 0 "hello, stream: decompressed by the host\n"
close 0
read hello.gz 1 0 "64 bytes"
close 0
range 0 0 "hello, stream: decompressed by the host\n"
open escape-symlink 44
open escape-relative 44
open dotdot 44
open directory 31
open missing 44
open bad-kind 28
open negative-offset 28
open bad-length 28
open past-end 28
open range-past-end 28
open nul 28
open long 37
open oversized-len 37
open efault-path-ptr 21
open efault-handle 21
read corrupt.gz 0 9 "gzip: invalid header"
read truncated.gz 0 9 "truncated"
read efault-buf 0 21
read huge-len 21
read efault-size 21
read bad-handle 8
error bad-handle 8
close 0
close again 8
read closed 8
open stream 9 33
open after close 0
`
	r, mod := guest(t, "stream")
	files := compressed(t)
	for _, res := range resolvers {
		t.Run(res.String(), func(t *testing.T) {
			base := t.TempDir()
			tree, sources, outside := filepath.Join(base, "tree"), filepath.Join(base, "sources"), filepath.Join(base, "outside")
			for _, d := range []string{tree, filepath.Join(sources, "dir"), outside} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			gz := files["hello.gz"]
			files := map[string][]byte{
				"corrupt.gz":   append([]byte{0x1f, 0x8b, 9}, gz[3:]...),
				"truncated.gz": gz[:len(gz)-10],
				"ranged":       append(append([]byte("xxx"), gz...), "yyy"...),
			}
			for name, b := range compressed(t) {
				files[name] = b
			}
			for name, b := range files {
				if err := os.WriteFile(filepath.Join(sources, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			secret := filepath.Join(outside, "secret.gz")
			if err := os.WriteFile(secret, gz, 0o644); err != nil {
				t.Fatal(err)
			}
			for link, target := range map[string]string{"out": outside, "up": "../outside"} {
				if err := os.Symlink(target, filepath.Join(sources, link)); err != nil {
					t.Fatal(err)
				}
			}
			mounts := []hostfs.Mount{
				{GuestPath: "/", Root: openRoot(t, tree, res)},
				{GuestPath: "/run/kiln/sources", Root: openRoot(t, sources, res), ReadOnly: true},
			}
			before, err := os.Stat(secret)
			if err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := runGuest(t, r, mod, mounts, "stream")
			if code != 0 {
				t.Fatalf("guest exited %d: %s", code, stderr)
			}
			if stdout != want {
				t.Errorf("stream ABI results differ:\n got:\n%s\nwant:\n%s", stdout, want)
			}
			after, err := os.Stat(secret)
			if err != nil {
				t.Fatal(err)
			}
			if !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("%s changed", secret)
			}
		})
	}
}

// TestWriteFileABI runs testdata/stream's write_file calls, hostile ones
// included (symlinked parents, "..", a symlink to a host file in the way, a
// read-only mount, bad flags, modes, times, pointers and lengths), and then
// checks on the host what each one made, and that nothing outside the tree
// changed.
func TestWriteFileABI(t *testing.T) {
	const want = `write_file ok 0
write_file exists 20
write_file replace 0
write_file append 0
write_file empty 0
write_file replace-nonempty-dir 55
write_file replace-into-dir 31
write_file append-missing 44
write_file append-symlink 32
write_file append-dir 31
write_file both-flags 28
write_file bad-flags 28
write_file bad-mode 28
write_file nsec-range 28
write_file utime-now 28
write_file read-only 69
write_file through-abs-symlink 44
write_file through-rel-symlink 44
write_file dotdot 44
write_file replace-symlink-out 0
write_file nul 28
write_file long 37
write_file efault-data 21
write_file huge-len 21
`
	if os.Getuid() != 0 {
		t.Skip("needs root: write_file sets owners")
	}
	r, mod := guest(t, "stream")
	for _, res := range resolvers {
		t.Run(res.String(), func(t *testing.T) {
			base := t.TempDir()
			tree, sources, outside := filepath.Join(base, "tree"), filepath.Join(base, "sources"), filepath.Join(base, "outside")
			for _, d := range []string{filepath.Join(tree, "dir"), sources, outside} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			secret := filepath.Join(outside, "secret")
			for p, b := range map[string]string{filepath.Join(tree, "dir", "file"): "in dir", secret: "host secret", filepath.Join(sources, "hello.gz"): "ro"} {
				if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for link, target := range map[string]string{"link": "new", "out": outside, "up": "../outside", "out-file": secret} {
				if err := os.Symlink(target, filepath.Join(tree, link)); err != nil {
					t.Fatal(err)
				}
			}
			mounts := []hostfs.Mount{
				{GuestPath: "/", Root: openRoot(t, tree, res)},
				{GuestPath: "/run/kiln/sources", Root: openRoot(t, sources, res), ReadOnly: true},
			}
			stdout, stderr, code := runGuest(t, r, mod, mounts, "stream", "writefile")
			if code != 0 {
				t.Fatalf("guest exited %d: %s", code, stderr)
			}
			if stdout != want {
				t.Errorf("write_file results differ:\n got:\n%s\nwant:\n%s", stdout, want)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(tree, "new"), &st); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(tree, "new")); err != nil || string(got) != "xyz+more" {
				t.Errorf("/new holds %q (%v), want the replaced and appended data", got, err)
			}
			if st.Mode != unix.S_IFREG|0o4755 || st.Uid != 1000 || st.Gid != 1001 ||
				st.Mtim != (unix.Timespec{Sec: 1600000000, Nsec: 500000000}) || st.Atim != st.Mtim {
				t.Errorf("/new: mode %o owner %d:%d mtime %v atime %v", st.Mode, st.Uid, st.Gid, st.Mtim, st.Atim)
			}
			if err := unix.Lstat(filepath.Join(tree, "empty"), &st); err != nil || st.Mode != unix.S_IFREG|0o600 || st.Size != 0 {
				t.Errorf("/empty: %v mode %o size %d", err, st.Mode, st.Size)
			}
			// The symlink to the host file was replaced, not followed.
			if err := unix.Lstat(filepath.Join(tree, "out-file"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("/out-file is not a regular file: %v %o", err, st.Mode)
			}
			if got, _ := os.ReadFile(secret); string(got) != "host secret" {
				t.Errorf("the host file behind /out-file now holds %q", got)
			}
			entries, err := os.ReadDir(outside)
			if err != nil || len(entries) != 1 {
				t.Errorf("outside the tree: %v %v", entries, err)
			}
			if got, _ := os.ReadFile(filepath.Join(tree, "dir", "file")); string(got) != "in dir" {
				t.Errorf("/dir/file now holds %q", got)
			}
		})
	}
}
