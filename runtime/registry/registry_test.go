package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// TestStagePathSpecialFiles: a FIFO or a symlink to /dev/zero named x.wasm
// in --stage-path once hung kiln (the FIFO's open blocks) or filled its
// memory (/dev/zero never ends). Both must be refused at once, naming the
// file, without opening it; a directory named x.wasm likewise.
func TestStagePathSpecialFiles(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"fifo", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "a FIFO"},
		{"symlink to /dev/zero", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, "a character device"},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "x.wasm")
			tt.make(t, file)
			_, err := New([]string{dir})
			if !errors.Is(err, ErrStagePath) || !errors.Is(err, engine.ErrNotRegular) {
				t.Fatalf("New = %v, want ErrStagePath and ErrNotRegular", err)
			}
			if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s as %s", err, file, tt.want)
			}
		})
	}
}

// TestStagePathModuleTooLarge: a sparse file over the module size limit is
// refused from its size, before it is read.
func TestStagePathModuleTooLarge(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "big.wasm")
	if err := os.WriteFile(file, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, engine.MaxModuleSize+1); err != nil {
		t.Fatal(err)
	}
	_, err := New([]string{dir})
	if !errors.Is(err, engine.ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 64 MiB") {
		t.Fatalf("New = %v, want ErrTooLarge saying the limit", err)
	}
}
