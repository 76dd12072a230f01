package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// osbuildStage is what osbuild spends per stage on a comparable manifest
// (six small tree stages and a tar assembler in about 2.2 s, mostly
// starting bubblewrap and Python), measured by the reference notes in
// /work/shared/reference/osbuild/README.md. It is a constant here because
// osbuild is not installed where the benchmarks run.
const osbuildStage = 270 * time.Millisecond

// reportStage reports the time per stage in milliseconds and how many
// times faster that is than osbuild's per-stage cost.
func reportStage(b *testing.B, elapsed time.Duration) {
	per := elapsed / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/stage")
	b.ReportMetric(float64(osbuildStage)/float64(per), "speedup-vs-osbuild")
}

// smallTree makes a tree of a few directories and files for a stage to run
// against.
func smallTree(b *testing.B) string {
	tree := b.TempDir()
	for _, d := range []string{"etc", "usr/bin", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, d, "file"), []byte("x\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return tree
}

// BenchmarkStageOverhead is the cost kiln adds to a stage that does nothing:
//
//   - cold: a new worker process compiling the module, as on a first build
//     with an empty cache;
//   - cached: a new worker process loading machine code from the disk
//     cache, as on the first stage of every later build, or after a kill;
//   - steady: another stage in the same worker, as for every later stage.
//
// The module is the multi-call Go test guest (3.8 MB), about the size of the
// stage library; "steady-c" and "steady-rust" are the hello stages, for the
// floor without a Go runtime to start.
func BenchmarkStageOverhead(b *testing.B) {
	ctx := context.Background()
	mod := guest(b)
	tree := smallTree(b)
	noop := Invocation{Name: "noop", ID: testID, Module: mod, Tree: tree}
	runOnce := func(b *testing.B, cacheDir string) {
		e, err := New(ctx, Config{CacheDir: cacheDir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Run(ctx, noop); err != nil {
			b.Fatal(err)
		}
		_ = e.Close()
	}

	b.Run("cold", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			dir := b.TempDir() // empty: nothing compiled yet
			start := time.Now()
			runOnce(b, dir)
			elapsed += time.Since(start)
		}
		reportStage(b, elapsed)
	})
	b.Run("cached", func(b *testing.B) {
		dir := b.TempDir()
		runOnce(b, dir) // fill the disk cache
		start := time.Now()
		for b.Loop() {
			runOnce(b, dir)
		}
		reportStage(b, time.Since(start))
	})
	steady := func(b *testing.B, st Invocation) {
		e, err := New(ctx, Config{CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		if _, err := e.Run(ctx, st); err != nil { // compile once
			b.Fatal(err)
		}
		start := time.Now()
		for b.Loop() {
			if _, err := e.Run(ctx, st); err != nil {
				b.Fatal(err)
			}
		}
		reportStage(b, time.Since(start))
	}
	b.Run("steady", func(b *testing.B) { steady(b, noop) })
	for _, lang := range []string{"c", "rust"} {
		b.Run("steady-"+lang, func(b *testing.B) {
			steady(b, Invocation{Name: "hello", ID: testID, Module: hello(b, lang), Tree: tree,
				Options: json.RawMessage(`{"greeting":"hi"}`)})
		})
	}
}

// BenchmarkCloseOnContextDone measures what wazero's own way of stopping a
// running guest, RuntimeConfig.WithCloseOnContextDone(true), costs a
// CPU-bound stage in wazero v1.12.0. Each iteration runs the same guest
// in-process with and without it and reports both times and the slowdown;
// this is why the engine stops stages by killing a worker process instead
// (docs/stage-abi.md, "Stopping a stage").
func BenchmarkCloseOnContextDone(b *testing.B) {
	guests := []struct {
		name  string
		stage string
		wasm  func(b *testing.B) []byte
		opts  string
	}{
		// 10^8 iterations of a decrement-and-branch loop.
		{name: "tight-loop", stage: "count", wasm: func(*testing.B) []byte { return countWasm(1e8) }},
		// 2,000 chained SHA-256 of 4 KiB in the Go guest: 8 MB hashed.
		{name: "go-sha256", stage: "sha", wasm: func(b *testing.B) []byte {
			w, err := guestOnce()
			if err != nil {
				b.Fatal(err)
			}
			return w
		}, opts: `{"Rounds": 2000}`},
	}
	for _, g := range guests {
		b.Run(g.name, func(b *testing.B) {
			ctx := context.Background()
			mod := NewModule(g.wasm(b))
			req := &stageRequest{Name: g.stage, ID: testID, Digest: mod.digest, Wasm: mod.wasm,
				Options: []byte(g.opts), Tree: b.TempDir()}
			var times [2]time.Duration
			runners := make([]*runner, 2)
			for i, closeOnDone := range []bool{false, true} {
				r, err := newRunner(ctx, runnerConfig{memoryLimit: DefaultMemoryLimit, closeOnDone: closeOnDone})
				if err != nil {
					b.Fatal(err)
				}
				defer r.close(ctx)
				// Compile and check outside the timing.
				if o := r.run(ctx, req, io.Discard, io.Discard, func() {}); o.ExitCode != 0 || o.Trap != "" || o.Err != "" {
					b.Fatalf("warm-up run: %+v", o)
				}
				runners[i] = r
			}
			for b.Loop() {
				for i, r := range runners {
					start := time.Now()
					r.run(ctx, req, io.Discard, io.Discard, func() {})
					times[i] += time.Since(start)
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(times[0].Microseconds())/1000/n, "plain-ms/op")
			b.ReportMetric(float64(times[1].Microseconds())/1000/n, "close-on-done-ms/op")
			b.ReportMetric(float64(times[1])/float64(times[0]), "slowdown-x")
		})
	}
}

// BenchmarkCancel measures how long a spinning stage takes to stop once its
// context is canceled: from cancel to Run returning, worker killed and
// reaped. The fresh worker the next stage needs is started by that stage
// and reported as "restart-ms".
func BenchmarkCancel(b *testing.B) {
	e, err := New(context.Background(), Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	mod, tree := guest(b), b.TempDir()
	if _, err := e.Run(context.Background(), Invocation{Name: "noop", ID: testID, Module: mod, Tree: tree}); err != nil {
		b.Fatal(err) // compiled once, outside the timing
	}
	var stopping, restarting time.Duration
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		var canceled time.Time
		live := &cancelOnWrite{cancel: func() { canceled = time.Now(); cancel() }}
		began := time.Now()
		_, err := e.Run(ctx, Invocation{Name: "spin", ID: testID, Module: mod, Tree: tree, Log: live})
		if !errors.Is(err, context.Canceled) {
			b.Fatalf("Run = %v, want context.Canceled", err)
		}
		stopping += time.Since(canceled)
		// Until the guest printed: worker start (after the previous
		// kill), module load from the disk cache, guest start.
		restarting += canceled.Sub(began)
		cancel()
	}
	n := float64(b.N)
	b.ReportMetric(float64(stopping.Microseconds())/1000/n, "stop-ms")
	b.ReportMetric(float64(restarting.Microseconds())/1000/n, "restart-ms")
}
