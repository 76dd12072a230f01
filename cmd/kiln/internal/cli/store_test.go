package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/mountns"
)

func TestMain(m *testing.M) {
	mountns.MustEnter()
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// buildStore commits a few objects the way a build would.
func buildStore(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := ""
	for i, id := range []string{"stage-1", "stage-2", "stage-3"} {
		obj, err := st.New(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		w, err := obj.Write(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.Path(), fmt.Sprintf("file%d", i)), bytes.Repeat([]byte("x"), 10000*(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if _, err := st.Commit(ctx, obj, id); err != nil {
			t.Fatal(err)
		}
		obj.Close()
		base = id
	}
	return root
}

func TestStoreCommands(t *testing.T) {
	root := buildStore(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"ls", []string{"store", "ls", "--store", root}, 0, []string{"OBJECT", "stage-1", "stage-3", "3 objects"}},
		{"ls json", []string{"store", "ls", "--json", "--store", root}, 0, []string{`"treesum"`, `"stage-2"`}},
		{"du", []string{"store", "du", "--store", root}, 0, []string{"objects/", "tmp/", "total in " + root}},
		{"fsck", []string{"store", "fsck", "--store", root}, 0, []string{"checked 3 objects, 3 refs", "no problems found"}},
		{"gc needs max-size", []string{"store", "gc", "--store", root}, 2, nil},
		{"gc bad size", []string{"store", "gc", "--max-size", "lots", "--store", root}, 2, nil},
		{"extra argument", []string{"store", "ls", "extra", "--store", root}, 2, nil},
		{"unknown command", []string{"stroe"}, 2, nil},
		{"version", []string{"version"}, 0, []string{"kiln ", "go 1.26"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestStoreFsckFindsTampering(t *testing.T) {
	root := buildStore(t)
	objects, err := os.ReadDir(filepath.Join(root, "objects"))
	if err != nil || len(objects) == 0 {
		t.Fatal(objects, err)
	}
	victim := filepath.Join(root, "objects", objects[0].Name())
	if err := os.WriteFile(filepath.Join(victim, "file0"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "store", "fsck", "--store", root)
	if code != 1 || !strings.Contains(out, "damaged") || !strings.Contains(out, "1 problem(s) found") {
		t.Errorf("fsck on a tampered store: exit %d\n%s", code, out)
	}
}

// TestStoreFsckRepair (issue 10 item 17): --repair removes the damaged
// object and its ref, exits 0, and leaves a store fsck finds clean, whose
// next build would rebuild the object.
func TestStoreFsckRepair(t *testing.T) {
	root := buildStore(t)
	target, err := os.Readlink(filepath.Join(root, "refs", "stage-2"))
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(root, "refs", target)
	if err := os.Chmod(filepath.Join(victim, "file1"), 0o4755); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "store", "fsck", "--repair", "--store", root)
	if code != 0 || !strings.Contains(out, "1 problem(s) found, all repaired") || !strings.Contains(out, "stage-2") {
		t.Fatalf("fsck --repair: exit %d\n%s", code, out)
	}
	if _, err := os.Lstat(victim); !os.IsNotExist(err) {
		t.Errorf("damaged object still there: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "refs", "stage-2")); !os.IsNotExist(err) {
		t.Errorf("ref to the damaged object still there: %v", err)
	}
	if code, out, _ := run(t, "store", "fsck", "--store", root); code != 0 || !strings.Contains(out, "checked 2 objects, 2 refs") {
		t.Errorf("fsck after repair: exit %d\n%s", code, out)
	}
}

func TestStoreGC(t *testing.T) {
	root := buildStore(t)
	code, out, errOut := run(t, "store", "gc", "--max-size", "0", "--store", root)
	if code != 0 || strings.Count(out, "removed ") != 3 {
		t.Fatalf("gc: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "store", "ls", "--store", root)
	if code != 0 || !strings.Contains(out, "no objects") {
		t.Errorf("ls after gc: exit %d\n%s", code, out)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"20G", 20 << 30, true}, {"1.5GiB", 3 << 29, true},
		{"300MB", 300e6, true}, {"4k", 4096, true}, {"", 0, false}, {"G", 0, false},
		{"-1", 0, false}, {"12Q", 0, false}, {"1e3", 0, false},
		{"9223372036854775807", 0, false}, {"8E", 0, false}, {"8388607T", 8388607 << 40, true},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestStoreFsckCrashLeftovers (issue 10 item 20): after a crash, fsck lists
// tmp/ leftovers as expected, exits 0, and removes them unless --no-clean.
func TestStoreFsckCrashLeftovers(t *testing.T) {
	root := buildStore(t)
	leftover := filepath.Join(root, "tmp", "obj-leftover")
	if err := os.MkdirAll(filepath.Join(leftover, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "store", "fsck", "--no-clean", "--store", root)
	if code != 0 || !strings.Contains(out, "leftover of an interrupted run (expected after a crash): tmp/obj-leftover") || !strings.Contains(out, "no problems found") {
		t.Errorf("fsck --no-clean with a leftover: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(leftover); err != nil {
		t.Fatalf("--no-clean removed the leftover: %v", err)
	}
	code, out, _ = run(t, "store", "fsck", "--store", root)
	if code != 0 || !strings.Contains(out, "removed 1 leftover(s)") {
		t.Errorf("fsck with a leftover: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("fsck kept the leftover: %v", err)
	}
	if code, _, _ := run(t, "store", "fsck", "--repair", "--no-clean", "--store", root); code != 2 {
		t.Errorf("--repair --no-clean: exit %d, want 2", code)
	}
}

// A damaged source is a problem fsck reports (item 17 of the trust issue:
// fsck missed damaged sources) and --repair removes, so the next build
// fetches it again.
func TestStoreFsckSources(t *testing.T) {
	root := buildStore(t)
	dir := filepath.Join(root, "sources", "org.osbuild.files")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	good := "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // "hello"
	bad := "sha256:486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7"  // "world"
	for name, content := range map[string]string{good: "hello", bad: "tampered"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := run(t, "store", "fsck", "--store", root)
	if code != 1 || !strings.Contains(out, "sources/org.osbuild.files/"+bad) || strings.Contains(out, good) {
		t.Errorf("fsck with a damaged source: exit %d, want 1 naming only %s\n%s", code, bad, out)
	}
	code, out, _ = run(t, "store", "fsck", "--repair", "--store", root)
	if code != 0 || !strings.Contains(out, "(repaired)") {
		t.Errorf("fsck --repair: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, bad)); !os.IsNotExist(err) {
		t.Errorf("--repair kept the damaged source: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, good)); err != nil {
		t.Errorf("--repair removed a good source: %v", err)
	}
	if code, out, _ := run(t, "store", "fsck", "--store", root); code != 0 {
		t.Errorf("fsck after repair: exit %d\n%s", code, out)
	}
}

// A compiled module without the checksum kiln writes beside it (or with a
// wrong one) is a problem fsck reports and --repair removes, so the next
// build compiles it again (trust issue, item 17: one bad cache file failed
// every later build).
func TestStoreFsckModuleCache(t *testing.T) {
	root := buildStore(t)
	entry := filepath.Join(moduleCacheDir(root), strings.Repeat("ab", 32))
	if err := os.MkdirAll(entry, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(entry, "compiled"), []byte("not what wazero wrote"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "store", "fsck", "--store", root)
	if code != 1 || !strings.Contains(out, "cache/wazero/"+strings.Repeat("ab", 32)) {
		t.Errorf("fsck with an unchecked cache entry: exit %d, want 1 naming it\n%s", code, out)
	}
	code, out, _ = run(t, "store", "fsck", "--repair", "--store", root)
	if code != 0 || !strings.Contains(out, "(repaired)") {
		t.Errorf("fsck --repair: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(entry, "compiled")); !os.IsNotExist(err) {
		t.Errorf("--repair kept the unchecked compiled module: %v", err)
	}
	if code, out, _ := run(t, "store", "fsck", "--store", root); code != 0 {
		t.Errorf("fsck after repair: exit %d\n%s", code, out)
	}
}
