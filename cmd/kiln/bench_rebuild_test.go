package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/debrepo"
)

// BenchmarkRebuild reports issue 14's rebuild figure: examples/debian-rootfs
// built with every stage checkpointed in a fresh store, then rebuilt after
// its last stage's option changed (org.osbuild.timezone's zone), so that
// only that stage and the assembler run again on top of the checkpoint
// before it:
//
//   - rebuild-s: the rebuild's wall time without its assembler (goal: under
//     5 s), the kiln process's start, planning and cache lookups included;
//   - rebuild-assembler-s: the assembler's share (org.osbuild.tar, zstd).
//
// It runs offline: the lock's .debs must be in kiln's default store
// (~/.cache/kiln/sources) or the test cache (~/.cache/kiln-test/debs, which
// TestDebianExamples fills), else it skips.
func BenchmarkRebuild(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the Debian tree is root-owned")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(root, "examples", "debian-rootfs")
	mirror := cachedMirror(b, filepath.Join(dir, "packages.lock.json"))
	tmpl, err := os.ReadFile(filepath.Join(dir, "rootfs.json.in"))
	if err != nil {
		b.Fatal(err)
	}
	manifest := func(zone string) string {
		var doc map[string]any
		if err := json.Unmarshal(tmpl, &doc); err != nil {
			b.Fatal(err)
		}
		stages := doc["pipeline"].(map[string]any)["stages"].([]any)
		last := stages[len(stages)-1].(map[string]any)
		if last["name"] != "org.osbuild.timezone" {
			b.Fatalf("the example's last stage is %v, not org.osbuild.timezone: update this benchmark", last["name"])
		}
		last["options"].(map[string]any)["zone"] = zone
		data, err := json.Marshal(doc)
		if err != nil {
			b.Fatal(err)
		}
		in := filepath.Join(b.TempDir(), "rootfs.json.in")
		if err := os.WriteFile(in, data, 0o644); err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(b.TempDir(), "rootfs.json")
		if o, err := exec.Command(kilnBin, "deb", "manifest", "--lock", filepath.Join(dir, "packages.lock.json"),
			"--mirror", "file://"+mirror, "-o", out, in).CombinedOutput(); err != nil {
			b.Fatalf("kiln deb manifest: %v\n%s", err, o)
		}
		return out
	}
	zones := []string{"Etc/UTC", "Europe/Berlin"}
	manifests := []string{manifest(zones[0]), manifest(zones[1])}

	type result struct {
		Stages []struct {
			Name   string
			Cached bool
		}
		Assembler *struct {
			Duration float64 `json:"duration_seconds"`
		}
	}
	build := func(store, m string) (time.Duration, result) {
		start := time.Now()
		cmd := exec.Command(kilnBin, "build", "--json", "--progress", "plain", "--store", store,
			"--checkpoint", "*", "--output-directory", b.TempDir(), m)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("kiln build: %v\n%s", err, lastLines(stderr.String(), 30))
		}
		var r result
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Assembler == nil {
			b.Fatalf("kiln build --json: %v (assembler %v)\n%s", err, r.Assembler, lastLines(stdout.String(), 10))
		}
		return took, r
	}

	var rebuild, assembler time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		store := filepath.Join(b.TempDir(), "store")
		first, _ := build(store, manifests[0])
		b.StartTimer()
		took, r := build(store, manifests[1])
		b.StopTimer()
		var ran []string
		for _, s := range r.Stages {
			if !s.Cached {
				ran = append(ran, s.Name)
			}
		}
		if len(ran) != 1 || ran[0] != "org.osbuild.timezone" {
			b.Fatalf("the rebuild ran stages %v, want only org.osbuild.timezone", ran)
		}
		a := time.Duration(r.Assembler.Duration * float64(time.Second))
		rebuild += took - a
		assembler += a
		b.Logf("first build %v; rebuild %v, of which the assembler %v", first.Round(time.Millisecond), took.Round(time.Millisecond), a.Round(time.Millisecond))
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(rebuild.Seconds()/n, "rebuild-s")
	b.ReportMetric(assembler.Seconds()/n, "rebuild-assembler-s")
}

// cachedMirror lays out the lock's .debs under their pool paths in a
// temporary directory, as symlinks into the local caches; it skips when a
// file is in neither (this benchmark never downloads).
func cachedMirror(b *testing.B, lockFile string) string {
	b.Helper()
	l, err := debrepo.ReadLock(lockFile)
	if err != nil {
		b.Fatal(err)
	}
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		b.Skipf("no cache directory: %v", err)
	}
	return layOutMirror(b, l, func(p debrepo.LockedPackage) string {
		for _, c := range []string{
			filepath.Join(cacheRoot, "kiln-test", "debs", p.SHA256+".deb"),
			filepath.Join(cacheRoot, "kiln", "sources", "org.osbuild.files", "sha256:"+p.SHA256),
		} {
			if st, err := os.Stat(c); err == nil && st.Size() == p.Size {
				return c
			}
		}
		b.Skipf("%s is in neither ~/.cache/kiln/sources nor ~/.cache/kiln-test/debs (run TestDebianExamples once with network to fill the cache)", p.Filename)
		return ""
	})
}
