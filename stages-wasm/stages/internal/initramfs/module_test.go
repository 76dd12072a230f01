package initramfs

import (
	"bytes"
	"os/exec"
	"testing"
)

// TestDecompressModule compresses a module with the real tools kmod's
// build uses (xz --check=crc32, zstd, gzip) and reads it back.
func TestDecompressModule(t *testing.T) {
	mod := bytes.Repeat([]byte("\x7fELF module text "), 4096)
	for _, tc := range []struct {
		suffix string
		tool   []string
	}{
		{".xz", []string{"xz", "--check=crc32", "-c"}},
		{".zst", []string{"zstd", "-q", "-c"}},
		{".gz", []string{"gzip", "-n", "-c"}},
	} {
		if _, err := exec.LookPath(tc.tool[0]); err != nil {
			t.Logf("skipping %s: needs %s: %v", tc.suffix, tc.tool[0], err)
			continue
		}
		cmd := exec.Command(tc.tool[0], tc.tool[1:]...)
		cmd.Stdin = bytes.NewReader(mod)
		z, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tc.tool[0], err)
		}
		p := "kernel/fs/ext4/ext4.ko" + tc.suffix
		got, err := DecompressModule(p, z)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !bytes.Equal(got, mod) {
			t.Errorf("%s: decompressed %d bytes, not the module", p, len(got))
		}
		if PlainModulePath(p) != "kernel/fs/ext4/ext4.ko" {
			t.Errorf("PlainModulePath(%q) = %q", p, PlainModulePath(p))
		}
		if _, err := DecompressModule(p, z[:len(z)/2]); err == nil {
			t.Errorf("%s: a truncated file decompressed", p)
		}
	}
	if got, _ := DecompressModule("a.ko", mod); !bytes.Equal(got, mod) {
		t.Error("a plain .ko changed")
	}
}
