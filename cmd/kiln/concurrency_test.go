package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// concurrencyManifest shares its first two stages (checkpointed) with every
// other n.
func concurrencyManifest(n int) string {
	return fmt.Sprintf(`{"pipeline": {
	  "stages": [
	    {"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/etc/skel", "parents": true}]}},
	    {"name": "kiln.write", "options": {"files": [
	      {"path": "/etc/os-release", "content": "NAME=shared\n"},
	      {"path": "/etc/skel/.profile", "content": "# shared\n"}]}},
	    {"name": "org.osbuild.hostname", "options": {"hostname": "host%d"}},
	    {"name": "kiln.write", "options": {"files": [{"path": "/etc/motd", "content": "build %d\n"}]}}
	  ],
	  "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar"}}
	}}`, n, n)
}

// TestConcurrencySuite (issue 10 items 14 and 18): 8 builds with a shared
// prefix (4 manifests, each built twice at once) beside a loop of
// `kiln store gc --max-size 1`, which removes every object no build
// holds: every build succeeds, each output is a sequential build's, and
// the store is clean afterwards. Before, such builds failed now and then
// with "object <assembler id>: not found" (1 of 8 in a trial), and ran the
// shared stages once per build. KILN_SOAK=1 (make soak) runs 5 rounds.
func TestConcurrencySuite(t *testing.T) {
	const manifests, copies, gcLoops = 4, 2, 3
	paths := make([]string, manifests)
	want := make([]string, manifests)
	ref := t.TempDir()
	for i := range paths {
		paths[i] = writeManifest(t, concurrencyManifest(i))
		out := t.TempDir()
		if br, r := build(t, ref, out, paths[i], "--checkpoint", "kiln.write"); r.code != 0 || !br.Success {
			t.Fatalf("sequential build %d: exit %d\n%s", i, r.code, r.stderr)
		}
		want[i] = outputDigest(t, out)
	}

	store := t.TempDir()
	copyCache(t, ref, store)
	// Several gc loops, so that some gc is removing at most moments: one
	// loop spends most of its time starting kiln.
	stop := make(chan struct{})
	gcDone := make(chan int, gcLoops)
	for range gcLoops {
		go func() {
			runs := 0
			defer func() { gcDone <- runs }()
			for {
				// Not t.Fatal: this is not the test's goroutine.
				out, err := exec.Command(kilnBin, "store", "gc", "--max-size", "1", "--store", store).CombinedOutput()
				runs++
				if err != nil {
					t.Errorf("kiln store gc: %v\n%s", err, out)
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	type outcome struct {
		i, copy int
		out     string
		r       result
		ok      bool
		ran     int
	}
	rounds := 1
	if os.Getenv("KILN_SOAK") != "" {
		rounds = 5
	}
	results := make(chan outcome, rounds*manifests*copies)
	for range rounds {
		var wg sync.WaitGroup
		for i := range manifests {
			for c := range copies {
				out := t.TempDir()
				wg.Go(func() {
					br, r := build(t, store, out, paths[i], "--checkpoint", "kiln.write")
					results <- outcome{i, c, out, r, r.code == 0 && br.Success, len(ranStages(br))}
				})
			}
		}
		wg.Wait()
	}
	close(stop)
	gcRuns := 0
	for range gcLoops {
		gcRuns += <-gcDone
	}
	close(results)
	ran := 0
	for o := range results {
		ran += o.ran
		if !o.ok {
			t.Errorf("build %d (copy %d) beside gc: exit %d\n%s", o.i, o.copy, o.r.code, o.r.stderr)
			continue
		}
		if got := outputDigest(t, o.out); got != want[o.i] {
			t.Errorf("build %d (copy %d) differs from the sequential build:\n%s\nwant:\n%s", o.i, o.copy, got, want[o.i])
		}
	}
	t.Logf("%d builds beside %d gc runs ran %d stages (sequentially, with nothing removed, %d)", rounds*manifests*copies, gcRuns, ran, 2+2*manifests)
	if r := kiln(t, "store", "fsck", "--store", store); r.code != 0 || strings.Contains(r.stdout, "problem:") {
		t.Errorf("fsck after the builds: %s%s", r.stdout, r.stderr)
	}
	assertStoreClean(t, store)
}
