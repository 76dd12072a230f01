package library

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// separateOnce builds three single-stage Go modules: the hello stage, linked
// three times with distinct build ids so that they are three modules to the
// engine, as three Go stages shipped separately would be. Their cost is the
// Go runtime and standard library each carries, the same for any small stage.
var separateOnce = sync.OnceValues(func() ([]*engine.Module, error) {
	dir, err := os.MkdirTemp("", "kiln-bench-separate-")
	if err != nil {
		return nil, err
	}
	var mods []*engine.Module
	for i := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("hello-%d.wasm", i))
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
			fmt.Sprintf("-ldflags=-buildid=separate-%d", i), "-o", out, "./hello/go")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building hello: %v\n%s", err, msg)
		}
		m, err := engine.ReadModuleFile(out)
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
	}
	return mods, nil
})

// benchRun is one stage run of a layout.
type benchRun struct {
	name string
	mod  *engine.Module
	opts string
}

// layouts returns the same three small stages as one multi-call module and
// as three separate modules.
func layouts(b *testing.B) map[string][]benchRun {
	stages, _ := builtLibrary(b)
	sep, err := separateOnce()
	if err != nil {
		b.Fatal(err)
	}
	multi := engine.NewModule(stages["org.osbuild.noop"].Module)
	return map[string][]benchRun{
		"multi-call": {
			{"org.osbuild.noop", multi, `{}`},
			{"org.osbuild.hostname", multi, `{"hostname":"kiln"}`},
			{"org.osbuild.locale", multi, `{"language":"C.UTF-8"}`},
		},
		"separate": {
			{"hello", sep[0], `{}`}, {"hello", sep[1], `{}`}, {"hello", sep[2], `{}`},
		},
	}
}

func runAll(b *testing.B, e *engine.Engine, runs []benchRun, tree string) {
	for _, r := range runs {
		if _, err := e.Run(context.Background(), engine.Invocation{
			Name: r.name, ID: "be9c", Module: r.mod, Options: []byte(r.opts), Tree: tree, Epoch: 1,
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchTree(b *testing.B) string {
	tree := filepath.Join(b.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		b.Fatal(err)
	}
	return tree
}

// BenchmarkStageOverhead measures what a stage costs besides its own work,
// for three small stages in one multi-call module and in three modules:
//
//   - cold: a new engine with an empty compilation cache (first build on
//     a machine) runs the three stages;
//   - new-process: a new engine whose on-disk cache holds the modules
//     (every later kiln invocation) runs the three stages;
//   - warm: an engine that has run them runs them again (later stages of
//     one build).
//
// ms/stage is the mean over the three stages.
func BenchmarkStageOverhead(b *testing.B) {
	for _, layout := range []string{"multi-call", "separate"} {
		b.Run("cold/"+layout, func(b *testing.B) {
			runs, tree := layouts(b)[layout], benchTree(b)
			var total time.Duration
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				e, err := engine.New(context.Background(), engine.Config{CacheDir: filepath.Join(b.TempDir(), fmt.Sprint(i))})
				if err != nil {
					b.Fatal(err)
				}
				runAll(b, e, runs, tree)
				_ = e.Close()
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N)/3, "ms/stage")
		})
		b.Run("new-process/"+layout, func(b *testing.B) {
			runs, tree := layouts(b)[layout], benchTree(b)
			cache := filepath.Join(b.TempDir(), "cache")
			e, err := engine.New(context.Background(), engine.Config{CacheDir: cache})
			if err != nil {
				b.Fatal(err)
			}
			runAll(b, e, runs, tree) // fills the on-disk cache
			_ = e.Close()
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				e, err := engine.New(context.Background(), engine.Config{CacheDir: cache})
				if err != nil {
					b.Fatal(err)
				}
				runAll(b, e, runs, tree)
				_ = e.Close()
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N)/3, "ms/stage")
		})
		b.Run("warm/"+layout, func(b *testing.B) {
			runs, tree := layouts(b)[layout], benchTree(b)
			e := newEngine(b)
			runAll(b, e, runs, tree)
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				runAll(b, e, runs, tree)
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N)/3, "ms/stage")
		})
	}
}
