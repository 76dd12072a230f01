package pipeline

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/store"
)

// TestBuildEntryPoint (issue 11 item 1): Build does what kiln build did
// in the CLI (manifest, plan, selectors, store, engine, sources, run), in
// process, with a real store and engine: the outputs are the tree's, the
// stages ran at the plan's epoch, and a second build is served from the
// store.
func TestBuildEntryPoint(t *testing.T) {
	reg := newTestRegistry(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.txt")
	const content = "from a relative source\n"
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256Sum(content)
	file := filepath.Join(dir, "m.json")
	doc := `{"pipeline": {"stages": [
	    {"name": "test.write", "options": {"path": "/etc/hostname", "content": "kiln\n"}},
	    {"name": "test.copy", "options": {"from": "/run/kiln/sources/org.osbuild.files/` + sum + `", "to": "/src"}}],
	  "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar"}}},
	  "sources": {"org.osbuild.files": {"urls": {"` + sum + `": "file:src.txt"}}}}`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	storeDir, out := filepath.Join(t.TempDir(), "store"), t.TempDir()
	build := func() (*Result, []EventKind) {
		t.Helper()
		var kinds []EventKind
		var planned *Plan
		res, err := Build(t.Context(), BuildConfig{
			ManifestFile: file, Registry: reg, Epoch: testEpoch,
			Checkpoints: []string{"test.write"}, StoreDir: storeDir, OutputDir: out,
			Events: func(ev Event) {
				kinds = append(kinds, ev.Kind)
				if ev.Kind == Planned {
					planned = ev.Plan
					if ev.StoreRoot != storeDir {
						t.Errorf("Planned: store %s, want %s", ev.StoreRoot, storeDir)
					}
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(kinds) == 0 || kinds[0] != Planned {
			t.Fatalf("events %v: want Planned first", kinds)
		}
		if planned.Epoch != testEpoch || planned.TreeID != res.TreeID || planned.Assembler.ID != res.AssemblerID {
			t.Errorf("Planned plan (epoch %d, tree %s) is not the one built (tree %s)", planned.Epoch, planned.TreeID, res.TreeID)
		}
		return res, kinds
	}

	res, _ := build()
	if got := ran(res); !slices.Equal(got, []int{0, 1}) || res.Assembler.Cached {
		t.Fatalf("first build ran %v, assembler cached %v", got, res.Assembler.Cached)
	}
	if want := []string{filepath.Join(out, "root.tar")}; !slices.Equal(res.Outputs, want) {
		t.Fatalf("outputs %v, want %v", res.Outputs, want)
	}
	got := readTar(t, res.Outputs[0])
	for name, want := range map[string]string{"etc/hostname": "kiln\n", "src": content} {
		h, ok := got[name]
		if !ok || h.content != want {
			t.Errorf("%s in the tarball: %q, want %q", name, h.content, want)
			continue
		}
		// The stages' clock and the assembler's clamp are the plan's
		// epoch: Run has no other.
		if h.mtime != testEpoch {
			t.Errorf("%s: mtime %d, want the plan's epoch %d", name, h.mtime, testEpoch)
		}
	}
	st, err := store.Open(t.Context(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := res.Stages[0].ID
	if !st.Contains(checkpoint) || !res.Stages[0].Checkpointed {
		t.Errorf("--checkpoint test.write: stage 0 (%s) not committed", checkpoint)
	}
	if _, err := os.Stat(filepath.Join(SourcesDir(storeDir), "org.osbuild.files", sum)); err != nil {
		t.Errorf("the source is not in the store's sources: %v", err)
	}
	if _, err := os.Stat(ModuleCacheDir(storeDir)); err != nil {
		t.Errorf("no module cache in the store: %v", err)
	}
	st.Close()

	if err := os.Remove(res.Outputs[0]); err != nil {
		t.Fatal(err)
	}
	res2, kinds := build()
	if got := ran(res2); len(got) != 0 || !res2.Assembler.Cached {
		t.Errorf("second build ran %v, assembler cached %v: want all from the store", got, res2.Assembler.Cached)
	}
	if slices.Contains(kinds, StageStarted) || slices.Contains(kinds, AssemblerStarted) {
		t.Errorf("second build's events %v: something ran", kinds)
	}
	if res2.TreeID != res.TreeID || res2.AssemblerID != res.AssemblerID {
		t.Errorf("second build's ids differ: %s %s, was %s %s", res2.TreeID, res2.AssemblerID, res.TreeID, res.AssemblerID)
	}
	if b, err := os.ReadFile(res2.Outputs[0]); err != nil || len(b) == 0 {
		t.Errorf("second build's output: %d bytes, %v", len(b), err)
	}
}

// TestBuildRefusesBeforeRunning (issue 11 item 9): options the assembler
// refuses though its schema allows them (qemu's zipl bootloader, a btrfs
// filesystem, qcow2_compat for a raw image), a selector that matches no
// stage and a missing manifest fail Build before any store is opened and
// before any stage runs; the error says what is wrong, as the CLI's exit
// status needs.
func TestBuildRefusesBeforeRunning(t *testing.T) {
	reg := newTestRegistry(t)
	const disk = `"filename": "d", "size": 33554432, "ptuuid": "0x14fc63d2", "root_fs_uuid": "9c6ae55b-cf88-45b8-84e8-64990759f39d"`
	qemu := func(opts string) string {
		return `{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/a"}}],
		  "assembler": {"name": "org.osbuild.qemu", "options": {` + opts + `}}}}`
	}
	tests := []struct {
		name, doc   string
		checkpoints []string
		want        error
		msg         string
	}{
		{"qemu bootloader", qemu(`"format": "raw", "bootloader": {"type": "zipl"}, ` + disk), nil, manifest.ErrInvalid,
			`$.pipeline.assembler.options: assembler org.osbuild.qemu: option "bootloader.type": zipl (s390x) is not supported`},
		{"qemu qcow2_compat on raw", qemu(`"format": "raw", "qcow2_compat": "1.1", ` + disk), nil, manifest.ErrInvalid,
			`option "qcow2_compat": applies to format qcow2, not raw`},
		{"qemu btrfs", qemu(`"format": "raw", "filename": "d", "size": 33554432, "pttype": "dos", "ptuuid": "0x14fc63d2",
		  "partitions": [{"start": 2048, "filesystem": {"type": "btrfs", "uuid": "9c6ae55b-cf88-45b8-84e8-64990759f39d", "mountpoint": "/"}}]`), nil, manifest.ErrInvalid,
			`option "partitions[0].filesystem.type": "btrfs" is not supported`},
		{"rawfs xfs", `{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/a"}}],
		  "assembler": {"name": "org.osbuild.rawfs", "options": {"filename": "fs", "size": 33554432, "root_fs_uuid": "9c6ae55b-cf88-45b8-84e8-64990759f39d", "fs_type": "xfs"}}}}`,
			nil, manifest.ErrInvalid, `option "fs_type": "xfs" is not supported`},
		{"unknown assembler", `{"pipeline": {"assembler": {"name": "org.osbuild.nope"}}}`, nil, manifest.ErrInvalid,
			`$.pipeline.assembler.name: unknown assembler "org.osbuild.nope"`},
		{"selector matching nothing", writes("a"), []string{"no.such.stage"}, ErrNoMatch, `--checkpoint "no.such.stage" matches no stage`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "m.json")
			if err := os.WriteFile(file, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			storeDir := filepath.Join(dir, "store")
			var events []EventKind
			res, err := Build(t.Context(), BuildConfig{ManifestFile: file, Registry: reg, StoreDir: storeDir,
				OutputDir: t.TempDir(), Checkpoints: tt.checkpoints, Events: func(ev Event) { events = append(events, ev.Kind) }})
			if !errors.Is(err, tt.want) || !contains(err, tt.msg) {
				t.Fatalf("Build = %v, want %v saying %q", err, tt.want, tt.msg)
			}
			if res != nil || len(events) != 0 {
				t.Errorf("Build ran: result %v, events %v", res, events)
			}
			if _, err := os.Stat(storeDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the store was opened (%v)", err)
			}
			// kiln inspect's plan is the same one.
			if _, err := MakePlan(BuildConfig{ManifestFile: file, Registry: reg, Checkpoints: tt.checkpoints}); !errors.Is(err, tt.want) {
				t.Errorf("MakePlan = %v, want %v", err, tt.want)
			}
		})
	}
	_, err := Build(t.Context(), BuildConfig{ManifestFile: filepath.Join(t.TempDir(), "none.json"), Registry: reg})
	if !errors.Is(err, ErrNoManifest) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Build of a missing manifest = %v, want ErrNoManifest", err)
	}
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

func sha256Sum(content string) string {
	h := sha256.Sum256([]byte(content))
	return "sha256:" + hex.EncodeToString(h[:])
}

type tarEntry struct {
	content string
	mtime   int64
}

func readTar(t *testing.T, path string) map[string]tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Clean(h.Name)] = tarEntry{string(b), h.ModTime.Unix()}
	}
}

// TestBuildStartsEngineOnlyToRunStages: a build the store serves whole
// starts no stage worker (two execs of kiln, most of a cached rebuild's
// time). Seen through the engine's cache directory: made a file, it fails
// engine.New, so a cached build that still made an engine would fail, and
// a build with a stage to run must.
func TestBuildStartsEngineOnlyToRunStages(t *testing.T) {
	reg := newTestRegistry(t)
	dir := t.TempDir()
	manifestFile := func(content string) string {
		f := filepath.Join(dir, content+".json")
		doc := `{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/f", "content": "` + content + `"}}],
		  "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar"}}}}`
		if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	storeDir := filepath.Join(t.TempDir(), "store")
	build := func(file string) error {
		_, err := Build(t.Context(), BuildConfig{ManifestFile: file, Registry: reg, Epoch: testEpoch, StoreDir: storeDir, OutputDir: t.TempDir()})
		return err
	}
	a := manifestFile("a")
	if err := build(a); err != nil {
		t.Fatal(err)
	}
	cache := ModuleCacheDir(storeDir)
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cache, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := build(a); err != nil {
		t.Errorf("a build the store serves whole made an engine: %v", err)
	}
	if err := build(manifestFile("b")); err == nil || !strings.Contains(err.Error(), "compilation cache") {
		t.Errorf("a build with a stage to run and no usable cache directory: %v, want the engine's error", err)
	}
}
