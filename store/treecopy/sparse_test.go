package treecopy_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treecopy"
)

func sparseFile(t *testing.T, path string, size int64, chunks map[int64][]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Skipf("cannot make a %d-byte file here: %v", size, err)
	}
	for off, data := range chunks {
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCopyKeepsHoles (issue 10 item 7): a sparse file is copied as a sparse
// file: same size and bytes, its holes still holes. Before, copy_file_range
// over the whole file wrote every zero of the holes.
func TestCopyKeepsHoles(t *testing.T) {
	head, mid := bytes.Repeat([]byte("h"), 1<<20), bytes.Repeat([]byte("m"), 3<<20+5)
	const size = 8 << 30 // the hole after mid ends the file
	for _, mode := range []treecopy.Mode{treecopy.Plain, treecopy.Auto} {
		t.Run(mode.String(), func(t *testing.T) {
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
			sparseFile(t, filepath.Join(src, "f"), size, map[int64][]byte{0: head, 1 << 30: mid})
			if err := treecopy.Copy(t.Context(), src, dst, treecopy.Options{Mode: mode}); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(dst, "f"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != size {
				t.Errorf("copy has size %d, want %d", st.Size, int64(size))
			}
			if used := st.Blocks * 512; used > 64<<20 {
				t.Errorf("copy allocates %d bytes for 4 MiB of data: holes were filled", used)
			}
			f, err := os.Open(filepath.Join(dst, "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for off, want := range map[int64][]byte{0: head, 1 << 30: mid, 1<<30 - 4: {0, 0, 0, 0}, size - 3: {0, 0, 0}} {
				got := make([]byte, len(want))
				if _, err := f.ReadAt(got, off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("bytes at %d differ", off)
				}
			}
		})
	}
}

// TestCopyCanceledMidFile (issue 10 item 7): cancelling stops a copy inside
// a file, between two chunks, with context.Canceled.
func TestCopyCanceledMidFile(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	sparseFile(t, filepath.Join(src, "f"), 1<<40, map[int64][]byte{0: []byte("a"), 1 << 30: []byte("b"), 1 << 35: []byte("c")})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	defer treecopy.SetChunkHook(func() {
		calls++
		if calls == 1 {
			cancel()
		}
	})()
	err := treecopy.Copy(ctx, src, dst, treecopy.Options{Mode: treecopy.Plain})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy after cancel = %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("%d chunks copied after the cancel, want none", calls-1)
	}
}
