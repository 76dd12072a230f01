package library

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/kilnbuild/kiln/stages-wasm/internal/wasmmeta"
)

// module is a minimal valid wasm module describing the named stages.
func module(t *testing.T, names ...string) []byte {
	t.Helper()
	var metas []wasmmeta.StageMeta
	for _, n := range names {
		metas = append(metas, wasmmeta.StageMeta{Name: n, Summary: "s " + n, Schema: json.RawMessage(`{"type":"object"}`)})
	}
	wasm, err := wasmmeta.Append([]byte("\x00asm\x01\x00\x00\x00"), metas)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func TestLoad(t *testing.T) {
	a, b := module(t, "org.x.b", "org.x.a"), module(t, "org.x.c")
	stages, err := Load(fstest.MapFS{
		"go.wasm":   {Data: a},
		"c.wasm":    {Data: b},
		"README.md": {Data: []byte("not a module")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range stages {
		names = append(names, s.Name+"@"+s.ModuleName)
	}
	if got := strings.Join(names, " "); got != "org.x.a@go.wasm org.x.b@go.wasm org.x.c@c.wasm" {
		t.Errorf("stages = %s", got)
	}
	if &stages[0].Module[0] != &stages[1].Module[0] {
		t.Error("stages of one module do not share its bytes")
	}
	if stages[0].ModuleDigest == stages[2].ModuleDigest || len(stages[0].ModuleDigest) != 64 {
		t.Errorf("digests %q, %q", stages[0].ModuleDigest, stages[2].ModuleDigest)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"nothing built", fstest.MapFS{"README.md": {Data: []byte("x")}}, "stage library not built: run make stages"},
		{"no metadata", fstest.MapFS{"x.wasm": {Data: []byte("\x00asm\x01\x00\x00\x00")}}, "x.wasm: module has no kiln.stages section"},
		{"not wasm", fstest.MapFS{"x.wasm": {Data: []byte("#!/bin/sh")}}, "x.wasm: not a WebAssembly module"},
		{"duplicate", fstest.MapFS{"a.wasm": {Data: module(t, "s")}, "b.wasm": {Data: module(t, "s")}}, "stage s is provided by both a.wasm and b.wasm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.fs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := Load(fstest.MapFS{}); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("empty: %v, want ErrNotBuilt", err)
	}
}

// TestEmbedded checks the embedded library is either absent with the
// documented error or consistent: every stage found by Lookup.
func TestEmbedded(t *testing.T) {
	stages, err := Stages()
	if errors.Is(err, ErrNotBuilt) {
		if _, ok := Lookup("org.osbuild.noop"); ok {
			t.Error("Lookup found a stage in an unbuilt library")
		}
		t.Skip("stage library not built (make stages); checked the error instead")
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stages {
		got, ok := Lookup(s.Name)
		if !ok || got.ModuleDigest != s.ModuleDigest {
			t.Errorf("Lookup(%s) = %v, %v", s.Name, got.ModuleName, ok)
		}
	}
}

// TestLoadSpecialFiles: Load on a directory (os.DirFS) holding a FIFO or a
// symlink to /dev/zero named x.wasm refuses it at once instead of blocking
// in the FIFO's open or reading /dev/zero forever.
func TestLoadSpecialFiles(t *testing.T) {
	for _, tt := range []struct {
		name string
		make func(path string) error
	}{
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"symlink to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.make(filepath.Join(dir, "x.wasm")); err != nil {
				t.Fatal(err)
			}
			_, err := Load(os.DirFS(dir))
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "x.wasm") {
				t.Fatalf("Load = %v, want ErrNotRegular naming x.wasm", err)
			}
		})
	}
}
