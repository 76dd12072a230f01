package pipeline

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// TestGCAtEveryStepKeepsWhatABuildUses (issue 10 item 14): gc removing every
// object it can, at every event of a build (a build pipeline, a checkpoint,
// an export, an assembler), must not take away what the build still needs.
// Before, the assembler's output was unheld between its commit and its
// export, and the build failed with "object <assembler id>: not found".
func TestGCAtEveryStepKeepsWhatABuildUses(t *testing.T) {
	e := newEnv(t)
	p := e.plan(`{"pipeline": {
	  "build": {"runner": "org.osbuild.linux", "pipeline": {"stages": [{"name": "test.write", "options": {"path": "/usr/bin/tool", "content": "tool"}}]}},
	  "stages": [
	    {"name": "test.copy", "options": {"from": "/run/kiln/build/usr/bin/tool", "to": "/tool"}},
	    {"name": "test.write", "options": {"path": "/a", "content": "a"}},
	    {"name": "test.write", "options": {"path": "/b", "content": "b"}}],
	  "assembler": {"name": "org.osbuild.noop"}}}`)
	gcs := 0
	for round := range 2 { // the second round starts from an empty store
		if _, err := e.st.GC(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
		_, err := e.run(sel(t, p, []string{p.Stages[0].ID}, []string{p.Stages[1].ID}), func(o *Options) {
			o.Events = func(ev Event) {
				if ev.Kind == StageLog {
					return
				}
				gcs++
				if _, err := e.st.GC(t.Context(), 0); err != nil {
					t.Errorf("gc at %v: %v", ev.Kind, err)
				}
			}
		})
		if err != nil {
			t.Fatalf("round %d, with gc at every step: %v", round, err)
		}
		if b, err := os.ReadFile(filepath.Join(e.out, p.Stages[1].ID, "tool")); err != nil || string(b) != "tool" {
			t.Errorf("round %d: exported tree: %q, %v", round, b, err)
		}
	}
	t.Logf("%d gc runs beside two builds", gcs)
	rep, err := e.st.Fsck(t.Context())
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck: %v %v", err, rep)
	}
}

// runConcurrently runs a and b, starting b when a's first stage starts and
// letting a go on only once b is running a stage or waiting for a lock, so
// that the two overlap whatever the machine's speed. It returns both
// results and b's waits.
func runConcurrently(t *testing.T, e *env, a, b *Plan, checkpoints []string) (ra, rb *Result, waits []string) {
	t.Helper()
	eng2, err := engine.New(t.Context(), engine.Config{CacheDir: filepath.Join(os.TempDir(), "kiln-pipeline-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer eng2.Close()
	type done struct {
		res *Result
		err error
	}
	bDone := make(chan done, 1)
	bBusy := make(chan struct{})
	bWaits := make(chan string, 16)
	started := false
	a, b = sel(t, a, checkpoints, nil), sel(t, b, checkpoints, nil)
	ra, err = e.run(a, func(o *Options) {
		o.Events = func(ev Event) {
			if ev.Kind != StageStarted || started {
				return
			}
			started = true
			go func() {
				signaled := false
				o2 := Options{Store: e.st, Engine: eng2, OutputDir: e.out}
				o2.Events = func(ev Event) {
					if ev.Kind == Waiting {
						bWaits <- ev.ID
					}
					if (ev.Kind == Waiting || ev.Kind == StageStarted) && !signaled {
						signaled = true
						close(bBusy)
					}
				}
				res, err := Run(t.Context(), b, o2)
				if !signaled {
					close(bBusy)
				}
				bDone <- done{res, err}
			}()
			<-bBusy
		}
	})
	if err != nil {
		t.Fatalf("first build: %v", err)
	}
	d := <-bDone
	if d.err != nil {
		t.Fatalf("second build: %v", d.err)
	}
	close(bWaits)
	for id := range bWaits {
		waits = append(waits, id)
	}
	return ra, d.res, waits
}

// TestConcurrentBuildsRunEachStageOnce (issue 10 item 18): two builds of one
// manifest at the same time run each stage and the assembler once in all;
// before, both ran everything.
func TestConcurrentBuildsRunEachStageOnce(t *testing.T) {
	e := newEnv(t)
	doc := `{"pipeline": {"stages": [
	  {"name": "test.write", "options": {"path": "/a", "content": "a"}},
	  {"name": "test.write", "options": {"path": "/b", "content": "b"}},
	  {"name": "test.write", "options": {"path": "/c", "content": "c"}}],
	  "assembler": {"name": "org.osbuild.noop"}}}`
	p := e.plan(doc)
	ra, rb, waits := runConcurrently(t, e, p, e.plan(doc), []string{p.Stages[1].ID})
	if got := len(ran(ra)) + len(ran(rb)); got != 3 {
		t.Errorf("the two builds ran %v and %v: %d stages, want 3", ran(ra), ran(rb), got)
	}
	if ra.Assembler.Cached == rb.Assembler.Cached {
		t.Errorf("assembler cached in the first build %v, in the second %v: want it run once", ra.Assembler.Cached, rb.Assembler.Cached)
	}
	if len(waits) == 0 {
		t.Error("the second build never waited for the first")
	}
}

// TestConcurrentBuildsShareAPrefix: two manifests that share a
// checkpointed prefix run it once; each runs its own last stage.
func TestConcurrentBuildsShareAPrefix(t *testing.T) {
	e := newEnv(t)
	a, b := e.plan(writes("a", "b", "c")), e.plan(writes("a", "b", "d"))
	if a.Stages[1].ID != b.Stages[1].ID {
		t.Fatal("the prefixes differ")
	}
	ra, rb, waits := runConcurrently(t, e, a, b, []string{a.Stages[1].ID})
	if fmt.Sprint(ran(ra)) != "[0 1 2]" || fmt.Sprint(ran(rb)) != "[2]" {
		t.Errorf("ran %v and %v, want [0 1 2] and [2]", ran(ra), ran(rb))
	}
	if fmt.Sprint(waits) != fmt.Sprint([]string{a.Stages[1].ID}) {
		t.Errorf("the second build waited for %v, want the shared checkpoint %s", waits, a.Stages[1].ID)
	}
}

// TestExportStagingLeftoversRemoved (issue 10 item 16): a build removes the
// staging directories a killed export left in the output directory, and
// nothing else: not one a live kiln holds, not names kiln does not make.
func TestExportStagingLeftoversRemoved(t *testing.T) {
	e := newEnv(t)
	leftover := filepath.Join(e.out, ".kiln-export-123")
	if err := os.MkdirAll(filepath.Join(leftover, "tree", "ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftover, "tree", "ro", "half"), []byte("half an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(leftover, "tree", "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(e.out, ".kiln-export-456")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	keep := []string{live, filepath.Join(e.out, ".kiln-export-mine"), filepath.Join(e.out, ".kiln-export-789")}
	if err := os.Mkdir(keep[1], 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep[2], []byte("a file, not kiln's directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := e.plan(`{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/a"}}], "assembler": {"name": "org.osbuild.noop"}}}`)
	if _, err := e.run(p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(leftover); !os.IsNotExist(err) {
		t.Errorf("the leftover of a killed export is still there: %v", err)
	}
	for _, k := range keep {
		if _, err := os.Lstat(k); err != nil {
			t.Errorf("%s was removed: %v", k, err)
		}
	}
	entries, _ := os.ReadDir(e.out)
	if len(entries) != len(keep) {
		t.Errorf("output directory holds %d entries, want the %d kept", len(entries), len(keep))
	}
}

// TestExportPrivacy (issue 10 item 2, export side): an exported tree with a
// setuid-root file, a file capability and a 0666 device node is out of
// other users' reach by default, and reachable as the tree says with
// --export-mode shared. The content itself is exported as stored.
func TestExportPrivacy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a setuid-root file, a capability and a device node")
	}
	u, err := user.Lookup("kiln-unpriv")
	if err != nil {
		t.Skip("no user kiln-unpriv to try the export as another user")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	e := newEnv(t)
	// The output directory must be reachable by the other user; t.TempDir's
	// parents are 0700.
	out, err := os.MkdirTemp("", "kiln-export-privacy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	if err := os.Chmod(out, 0o755); err != nil {
		t.Fatal(err)
	}
	obj, err := e.st.New(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	w, err := obj.Write(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	root := w.Path()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(root, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "su"), []byte("#!/bin/sh\n"), 0o755))
	must(unix.Chmod(filepath.Join(root, "bin", "su"), 0o4755))
	must(os.WriteFile(filepath.Join(root, "bin", "ping"), []byte("ping"), 0o755))
	capNetRaw := "\x01\x00\x00\x02\x00\x20\x00\x00" + string(make([]byte, 12))
	must(unix.Lsetxattr(filepath.Join(root, "bin", "ping"), "security.capability", []byte(capNetRaw), 0))
	must(unix.Mknod(filepath.Join(root, "disk"), unix.S_IFBLK|0o666, int(unix.Mkdev(7, 0))))
	must(unix.Chmod(filepath.Join(root, "disk"), 0o666))
	must(w.Close())
	if _, err := e.st.Commit(t.Context(), obj, "privacy"); err != nil {
		t.Fatal(err)
	}

	// reach tells whether the other user can stat path.
	reach := func(path string) bool {
		cmd := exec.Command("stat", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd.Run() == nil
	}
	for _, tc := range []struct {
		mode     ExportMode
		rootMode os.FileMode
		reached  bool
	}{
		{ExportPrivate, 0o700, false},
		{ExportShared, 0o755, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			dir := filepath.Join(out, tc.mode.String())
			dst, err := exportTree(t.Context(), e.st, "privacy", dir, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != tc.rootMode {
				t.Errorf("exported tree's top directory: %v %v, want %v", st.Mode(), err, tc.rootMode)
			}
			// Exported as stored: the invoking user gets what the tree says.
			if st, err := os.Stat(filepath.Join(dst, "bin", "su")); err != nil || st.Mode()&os.ModeSetuid == 0 {
				t.Errorf("bin/su: %v %v, want setuid kept", st.Mode(), err)
			}
			for _, p := range []string{"bin/su", "bin/ping", "disk"} {
				if got := reach(filepath.Join(dst, p)); got != tc.reached {
					t.Errorf("%s reachable by kiln-unpriv: %v, want %v", p, got, tc.reached)
				}
			}
			// The assembler's directories likewise.
			files, err := exportFiles(t.Context(), e.st, "privacy", filepath.Join(dir, "files"), tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if filepath.Base(f) == "bin" && reach(filepath.Join(f, "su")) != tc.reached {
					t.Errorf("%s/su reachable by kiln-unpriv: %v", f, !tc.reached)
				}
			}
		})
	}
}

// TestExportedImagesPrivate: an assembler's output is the whole tree in
// one file (its shadow hashes and keys included), so in private mode only
// its owner may read it; shared mode keeps the assembler's mode.
func TestExportedImagesPrivate(t *testing.T) {
	for _, tc := range []struct {
		mode ExportMode
		want os.FileMode
	}{{ExportPrivate, 0o600}, {ExportShared, 0o644}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			e := newEnv(t)
			p := e.plan(`{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/f", "content": "x"}}],
			  "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar"}}}}`)
			if _, err := e.run(p, func(o *Options) { o.ExportMode = tc.mode }); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(e.out, "root.tar"))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.want {
				t.Errorf("root.tar exported %s is %04o, want %04o", tc.mode, got, tc.want)
			}
		})
	}
}
