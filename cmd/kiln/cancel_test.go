package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spinWasm is a WASI command that loops forever without a system call:
// (module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))
var spinWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x00, // one function of type 0
	0x05, 0x03, 0x01, 0x00, 0x01, // one memory, 1 page
	0x07, 0x13, 0x02, // two exports
	0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
	0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
	0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop { br 0 }
}

// userStages makes a --stage-path directory holding the spinning stage
// under name.
func userStages(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name+".wasm"), spinWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const spinManifest = `{"pipeline": {"stages": [
  {"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/etc"}]}},
  {"name": "test.spin", "options": {"anything": "goes"}}]}}`

func TestBuildStageTimeout(t *testing.T) {
	store := t.TempDir()
	// The spinning stage alone: no other stage has to finish in time.
	r := kiln(t, "build", "--progress", "plain", "--stage-timeout", "1s", "--store", store,
		"--stage-path", userStages(t, "test.spin"), writeManifest(t, `{"pipeline": {"stages": [{"name": "test.spin"}]}}`))
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"timed out", "options not validated", "test.spin"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stderr)
		}
	}
	assertStoreClean(t, store)
}

// TestBuildInterrupt sends SIGINT while a stage spins, as Ctrl-C does: kiln
// must stop the stage, leave the store consistent and exit non-zero.
func TestBuildInterrupt(t *testing.T) {
	store := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a safety net, not an assertion
	defer cancel()
	cmd := exec.CommandContext(ctx, kilnBin, "build", "--progress", "json", "--store", store,
		"--stage-path", userStages(t, "test.spin"), writeManifest(t, spinManifest))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), `"event":"stage-started"`) && strings.Contains(sc.Text(), "test.spin") {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		seen = append(seen, sc.Text())
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("kiln did not stop after SIGINT:\n%s", strings.Join(seen, "\n"))
	}
	if err == nil {
		t.Fatalf("interrupted build exited 0:\n%s", strings.Join(seen, "\n"))
	}
	assertStoreClean(t, store)
}

func TestUserStageReplacesBuiltin(t *testing.T) {
	r := kiln(t, "stages", "list", "--stage-path", userStages(t, "org.osbuild.noop"))
	if r.code != 0 || !strings.Contains(r.stdout, "(replaces the built-in)") {
		t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = kiln(t, "stages", "show", "--stage-path", userStages(t, "test.spin"), "test.spin")
	if r.code != 0 || !strings.Contains(r.stdout, "options are not validated") {
		t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func assertStoreClean(t *testing.T, store string) {
	t.Helper()
	// Look at tmp/ first: other kiln commands would clean it.
	tmp, _ := os.ReadDir(filepath.Join(store, "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries", len(tmp))
	}
	if r := kiln(t, "store", "fsck", "--store", store); r.code != 0 {
		t.Errorf("fsck: %s%s", r.stdout, r.stderr)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), store) {
		t.Errorf("a mount under %s is left on the host", store)
	}
}
