package treesum

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sparseFile writes data at each offset of a file truncated to size.
func sparseFile(t *testing.T, path string, size int64, chunks map[int64]string) {
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
		if _, err := f.WriteAt([]byte(data), off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSparseSameDigest (issue 10 item 7): a sparse file hashes exactly like
// the dense file with the same bytes, holes included, and like a plain
// SHA-256 of its contents.
func TestSparseSameDigest(t *testing.T) {
	chunks := map[int64]string{0: "head", 5<<20 + 3: "middle", 40<<20 - 4: "tail"}
	for _, size := range []int64{40 << 20, 64<<20 + 1} { // data at the end, and a trailing hole
		sparse, dense := emptyRoot(t), emptyRoot(t)
		sparseFile(t, filepath.Join(sparse, "f"), size, chunks)
		content := make([]byte, size)
		for off, data := range chunks {
			copy(content[off:], data)
		}
		if err := os.WriteFile(filepath.Join(dense, "f"), content, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Sum(t.Context(), sparse)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Sum(t.Context(), dense)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("size %d: sparse file sums %s, dense %s", size, a, b)
		}
		n := &node{path: filepath.Join(sparse, "f")}
		if err := hashFile(t.Context(), n); err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(content); n.digest != want {
			t.Errorf("size %d: file digest %x, sha256 of its contents %x", size, n.digest, want)
		}
	}
}

// TestHashCanceledMidFile (issue 10 item 7): cancelling stops the hash of a
// huge sparse file inside the file, with context.Canceled. Before, the hash
// read all 512 GiB of zeros and never looked at its context.
func TestHashCanceledMidFile(t *testing.T) {
	dir := emptyRoot(t)
	sparseFile(t, filepath.Join(dir, "huge"), 512<<30, map[int64]string{1 << 30: "x"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	chunkHook = func() {
		calls++
		if calls == 1 {
			cancel()
		}
	}
	defer func() { chunkHook = nil }()
	_, err := Sum(ctx, dir)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sum after cancel = %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("%d chunks hashed after the cancel, want none", calls-1)
	}
}

// TestHashTooLarge (issue 10 item 7): a file over MaxFileSize is refused
// with ErrTooLarge and its path, instead of hashing for hours.
func TestHashTooLarge(t *testing.T) {
	dir := emptyRoot(t)
	path := filepath.Join(dir, "bomb")
	sparseFile(t, path, MaxFileSize+1, nil)
	_, err := Sum(t.Context(), dir)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Sum of a %d-byte file = %v, want ErrTooLarge naming %s", int64(MaxFileSize+1), err, path)
	}
}
