package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cacheEntry returns the one wazero file of mod's cache entry in dir.
func cacheEntry(t *testing.T, dir string, mod *Module) string {
	t.Helper()
	files, _, err := cacheFiles(filepath.Join(dir, mod.Digest()))
	if err != nil || len(files) != 1 {
		t.Fatalf("cache entry of %s: %v, %v", mod.Digest(), files, err)
	}
	return filepath.Join(dir, mod.Digest(), files[0])
}

// runCached runs mod with a fresh engine (so a fresh worker, which reads the
// disk cache) and returns the warnings it gave.
func runCached(t *testing.T, dir string, mod *Module) []string {
	t.Helper()
	var warnings []string
	e := newEngine(t, Config{CacheDir: dir, Warn: func(m string) { warnings = append(warnings, m) }})
	if _, err := e.Run(t.Context(), Invocation{Name: "noop", ID: testID, Module: mod, Tree: t.TempDir()}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	_ = e.Close()
	return warnings
}

// TestDamagedCacheIsRecompiled: one damaged compiled-module cache file once
// failed every later build (wazero's "checksum mismatch"), or, damaged
// where wazero's checksum does not reach, ran machine code from the wrong
// offset. kiln checks each entry against its own checksum and compiles the
// module again, with a warning.
func TestDamagedCacheIsRecompiled(t *testing.T) {
	mod := NewModule(countWasm(10))
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, file string)
	}{
		{"a byte of machine code flipped", func(t *testing.T, file string) { flipByte(t, file, -12) }},
		{"a function offset changed", func(t *testing.T, file string) {
			// Just past the header: magic, version, function count.
			flipByte(t, file, len("WAZEVO")+1+len(wazeroVersion(t, file))+4)
		}},
		{"cut short", func(t *testing.T, file string) {
			fi, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(file, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"checksum file missing", func(t *testing.T, file string) {
			if err := os.Remove(filepath.Join(filepath.Dir(filepath.Dir(file)), cacheSumFile)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if w := runCached(t, dir, mod); len(w) != 0 {
				t.Fatalf("warnings on a cold compile: %q", w)
			}
			file := cacheEntry(t, dir, mod)
			tt.damage(t, file)
			w := runCached(t, dir, mod)
			if len(w) != 1 || !strings.Contains(w[0], "was damaged") || !strings.Contains(w[0], mod.Digest()) {
				t.Errorf("warnings = %q, want one saying the entry was damaged", w)
			}
			if problems, err := CheckCache(dir, false); err != nil || len(problems) != 0 {
				t.Errorf("after the recompile, CheckCache = %v, %v, want a clean cache", problems, err)
			}
			if w := runCached(t, dir, mod); len(w) != 0 {
				t.Errorf("warnings from the repaired entry: %q", w)
			}
		})
	}
}

// TestCheckCache: fsck's view of the cache finds a damaged entry and an
// older kiln's layout, removes them with repair, and then finds nothing.
func TestCheckCache(t *testing.T) {
	dir := t.TempDir()
	mod := NewModule(countWasm(20))
	runCached(t, dir, mod)
	flipByte(t, cacheEntry(t, dir, mod), -12)
	old := filepath.Join(dir, "wazero-v1.12.0-amd64-linux")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	problems, err := CheckCache(dir, false)
	if err != nil || len(problems) != 2 {
		t.Fatalf("CheckCache = %v, %v, want the damaged entry and the old layout", problems, err)
	}
	for _, p := range problems {
		if p.Removed {
			t.Errorf("%v removed without repair", p)
		}
	}
	problems, err = CheckCache(dir, true)
	if err != nil || len(problems) != 2 || !problems[0].Removed || !problems[1].Removed {
		t.Fatalf("CheckCache(repair) = %v, %v", problems, err)
	}
	if problems, err := CheckCache(dir, false); err != nil || len(problems) != 0 {
		t.Errorf("after repair, CheckCache = %v, %v", problems, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old layout is still there: %v", err)
	}
	if w := runCached(t, dir, mod); len(w) != 0 {
		t.Errorf("the build after repair warned: %q", w)
	}
}

// flipByte inverts the byte at off (from the end when negative).
func flipByte(t *testing.T, file string, off int) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// wazeroVersion is the version string in a cache file's header.
func wazeroVersion(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil || len(b) < 7 || string(b[:6]) != "WAZEVO" {
		t.Fatalf("%s is not a wazero cache file (%v)", file, err)
	}
	return string(b[7 : 7+int(b[6])])
}

// TestCacheWriteFailureIsNotFatal: a store whose disk is full cannot take
// a new compiled module; the stage still runs, compiled without the cache,
// with a warning (found by the full-disk suite: the build failed as an
// "invalid stage module").
func TestCacheWriteFailureIsNotFatal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	ballast, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = ballast.Write(make([]byte, 4096))
	}
	ballast.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v", err)
	}
	mod := NewModule(countWasm(10))
	w := runCached(t, filepath.Join(dir, "cache"), mod)
	if len(w) != 1 || !strings.Contains(w[0], "without it") || !strings.Contains(w[0], "no space left on device") {
		t.Errorf("warnings = %q, want one saying the module was compiled without the cache", w)
	}
}
