package ldcache

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
)

// FuzzScan feeds arbitrary bytes as a library file: Scan must neither fail
// nor panic on a file that is not a valid ELF object (ldconfig skips those),
// and an entry it makes must be for that file.
func FuzzScan(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("INPUT(-lfoo)"))
	if b, err := os.ReadFile("/usr/lib/x86_64-linux-gnu/libdl.so.2"); err == nil {
		f.Add(b)
	}
	root := f.TempDir()
	dir := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "libfuzz.so.1")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		entries, _, err := Scan(Dir(root), "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > 1 {
			t.Fatalf("%d entries from one file", len(entries))
		}
		if len(entries) == 1 {
			if _, err := elf.NewFile(bytes.NewReader(b)); err != nil {
				t.Fatalf("entry %+v from a file debug/elf refuses", entries[0])
			}
		}
		// Encode must hold whatever names the file gave.
		_ = Encode(entries)
	})
}
