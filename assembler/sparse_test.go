package assembler

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cancelWriter cancels its context at its first write at or past after
// bytes, and keeps writing: whatever stops the writer must be the context.
type cancelWriter struct {
	cancel context.CancelFunc
	after  int64
	n      int64
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n >= w.after {
		w.cancel()
	}
	return len(p), nil
}

// TestTarSparseBombCancel: a tree holding a 4 EiB sparse file, or a big
// dense one, stops as soon as the context is cancelled. Before the fix the
// writer read the 4 EiB hole byte by byte and ignored cancellation (the
// test then hangs until go test's timeout), and a dense file was copied to
// its end and the call returned success (issue 10 item 7). Each
// assembler's own cancellation is in the suite (assemblertest).
func TestTarSparseBombCancel(t *testing.T) {
	bombTree, _ := sparseBombTree(t, true)
	denseTree := t.TempDir()
	if err := os.WriteFile(filepath.Join(denseTree, "dense"), bytes.Repeat([]byte("d"), 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tree := range map[string]string{"bomb": bombTree, "dense": denseTree} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			err := WriteTar(ctx, &cancelWriter{cancel: cancel, after: 1 << 20}, tree, TarOptions{Epoch: testEpoch})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("WriteTar = %v, want context.Canceled", err)
			}
		})
	}
}

// TestTarSparseBomb: the 4 EiB file goes into the tarball as a sparse
// member of a few blocks, which GNU tar lists with its real size and
// extracts (onto tmpfs, which holds it) with its data where it was, and
// which Go's archive/tar reads with its real size.
func TestTarSparseBomb(t *testing.T) {
	requireTools(t, "tar")
	tree, _ := sparseBombTree(t, true)
	out := t.TempDir()
	tarball := runTar(t, tree, out, `{"filename": "bomb.tar"}`)
	st, err := os.Stat(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 4<<20 {
		t.Errorf("the tarball is %d bytes, want a few blocks per data chunk", st.Size())
	}
	list, err := runCmd("tar", "--numeric-owner", "-tvf", tarball)
	if err != nil {
		t.Fatalf("tar -tvf: %v\n%s", err, list)
	}
	if !strings.Contains(string(list), "4611686018427387904") || !strings.Contains(string(list), "./bomb") || strings.Contains(string(list), "GNUSparseFile") {
		t.Errorf("tar -tv: no ./bomb of 4 EiB in\n%s", list)
	}
	f, _ := os.Open(tarball)
	defer f.Close()
	tr := tar.NewReader(f)
	var found bool
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "./bomb" {
			found = h.Size == 4<<60
			head := make([]byte, 4)
			if _, err := io.ReadFull(tr, head); err != nil || string(head) != "head" {
				t.Errorf("archive/tar reads %q, %v at the start of ./bomb", head, err)
			}
		}
	}
	if !found {
		t.Error("archive/tar finds no ./bomb of 4 EiB")
	}
	dest := sparseBombDir(t)
	if out, err := runCmd("tar", "-C", dest, "-xf", tarball); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	got, err := os.Open(filepath.Join(dest, "bomb"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	gst, _ := got.Stat()
	head, tail := make([]byte, 4), make([]byte, 4)
	got.ReadAt(head, 0)
	got.ReadAt(tail, 4<<60-1<<20)
	if gst.Size() != 4<<60 || string(head) != "head" || string(tail) != "tail" {
		t.Errorf("extracted: %d bytes, %q at 0, %q at 4E-1M", gst.Size(), head, tail)
	}
	if data, err := unix.Seek(int(got.Fd()), 1<<20, unix.SEEK_DATA); err != nil || data != 4<<60-1<<20 {
		t.Errorf("extracted: data after the head at %d (%v), want only the tail's", data, err)
	}
}

// sparseContent writes the test file: data in chunk 0, a zero chunk, data
// straddling chunks 2 and 3, zero chunks, and a partial last chunk; with
// holes, the zero parts are holes, else they are written zeros.
func sparseContent(t *testing.T, path string, holes bool) []byte {
	t.Helper()
	const size = 7*sparseChunk + 4321
	want := make([]byte, size)
	copy(want[10:], "first chunk")
	copy(want[3*sparseChunk-5:], "straddles chunks 2 and 3")
	copy(want[size-3:], "end")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if holes {
		for _, off := range []int64{10, 3*sparseChunk - 5, size - 3} {
			end := off + int64(bytes.IndexByte(want[off:], 0))
			if off == size-3 {
				end = size
			}
			if _, err := f.WriteAt(want[off:end], off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	} else if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	return want
}

// TestTarSparseReproducible: holes are found by content, so a file with
// holes and the same file written densely give the same bytes; GNU tar and
// archive/tar read the member back as the file.
func TestTarSparseReproducible(t *testing.T) {
	requireTools(t, "tar")
	var sums [2][32]byte
	var want []byte
	for i, holes := range []bool{true, false} {
		tree := t.TempDir()
		want = sparseContent(t, filepath.Join(tree, "f"), holes)
		os.Chtimes(filepath.Join(tree, "f"), time.Unix(testEpoch, 0), time.Unix(testEpoch, 0))
		var b bytes.Buffer
		if err := WriteTar(t.Context(), &b, tree, TarOptions{Epoch: testEpoch}); err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b.Bytes())
		if i > 0 {
			continue
		}
		if !bytes.Contains(b.Bytes(), []byte("GNU.sparse.major=1")) {
			t.Error("no sparse member in the stream")
		}
		if b.Len() > 5*sparseChunk {
			t.Errorf("the stream is %d bytes, want the zero chunks left out", b.Len())
		}
		tr := tar.NewReader(bytes.NewReader(b.Bytes()))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == "./f" {
				got, err := io.ReadAll(tr)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("archive/tar reads %d bytes (%v), not the file", len(got), err)
				}
			}
		}
		tarball := filepath.Join(t.TempDir(), "x.tar")
		os.WriteFile(tarball, b.Bytes(), 0o644)
		dest := t.TempDir()
		if out, err := runCmd("tar", "-C", dest, "-xf", tarball); err != nil {
			t.Fatalf("tar -x: %v\n%s", err, out)
		}
		if got, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || !bytes.Equal(got, want) {
			t.Errorf("GNU tar extracts %d bytes (%v), not the file", len(got), err)
		}
	}
	if sums[0] != sums[1] {
		t.Error("a file with holes and the same file written densely give different streams")
	}
}

// TestOCISparseBomb: skopeo copies (checking every digest) an image whose
// layer holds the 4 EiB file.
func TestOCISparseBomb(t *testing.T) {
	requireTools(t, "skopeo")
	tree, _ := sparseBombTree(t, true)
	archive := runOCI(t, tree, `{"filename": "i.tar", "architecture": "amd64"}`)
	if st, _ := os.Stat(archive); st.Size() > 4<<20 {
		t.Errorf("the archive is %d bytes", st.Size())
	}
	dir := filepath.Join(t.TempDir(), "copy")
	if out, err := runCmd("skopeo", "copy", "oci-archive:"+archive, "dir:"+dir); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
}

// TestOCISparseUmoci: umoci unpacks a layer holding a sparse member into
// the file.
func TestOCISparseUmoci(t *testing.T) {
	requireTools(t, "umoci", "tar")
	tree := t.TempDir()
	want := sparseContent(t, filepath.Join(tree, "f"), true)
	archive := runOCI(t, tree, `{"filename": "i.tar", "architecture": "amd64", "tag": "latest"}`)
	work := t.TempDir()
	layout, bundle := filepath.Join(work, "layout"), filepath.Join(work, "bundle")
	if err := os.Mkdir(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd("tar", "-C", layout, "-xf", archive); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	args := []string{"unpack", "--image", layout + ":latest", bundle}
	if os.Geteuid() != 0 {
		args = append([]string{"unpack", "--rootless"}, args[1:]...)
	}
	if out, err := runCmd("umoci", args...); err != nil {
		t.Fatalf("umoci %v: %v\n%s", args, err, out)
	}
	if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "f")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("umoci unpacks %d bytes (%v), not the file", len(got), err)
	}
}

// TestTarSparseLongNameXattrs: a sparse member whose name needs a PAX path
// record and which has xattrs keeps both, and GNU tar restores the file
// at its long name.
func TestTarSparseLongNameXattrs(t *testing.T) {
	requireTools(t, "tar")
	tree := t.TempDir()
	long := strings.Repeat("d", 90) + "/" + strings.Repeat("n", 120)
	if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(long)), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(tree, long)
	want := sparseContent(t, p, true)
	if err := unix.Setxattr(p, "user.kiln", []byte("KLN.sparse.x=1\n17 KLN.sparse.y=2\n"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	var b bytes.Buffer
	if err := WriteTar(t.Context(), &b, tree, TarOptions{Xattrs: true, Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b.Bytes()))
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "./"+long {
			continue
		}
		found = true
		if v := h.PAXRecords["SCHILY.xattr.user.kiln"]; v != "KLN.sparse.x=1\n17 KLN.sparse.y=2\n" {
			t.Errorf("xattr %q", v)
		}
		if got, err := io.ReadAll(tr); err != nil || !bytes.Equal(got, want) {
			t.Errorf("archive/tar reads %d bytes (%v), not the file", len(got), err)
		}
	}
	if !found {
		t.Errorf("no ./%s in the stream", long)
	}
	tarball := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(tarball, b.Bytes(), 0o644)
	dest := t.TempDir()
	if out, err := runCmd("tar", "-C", dest, "-xf", tarball); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(dest, long)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("GNU tar extracts %d bytes (%v), not the file", len(got), err)
	}
}
