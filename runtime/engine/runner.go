package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// stageFeatures are the WebAssembly features a stage may use: WebAssembly
// 2.0 without SIMD and multi-value, which none of the toolchains kiln
// builds with emits by default (Go, clang and rustc for wasip1) and which
// are a large part of wazero's compiler. Reference types stay (bulk memory,
// which Go's memory.fill and memory.copy need, comes with them in wazero);
// tables are bounded by boundTables instead.
const stageFeatures = api.CoreFeaturesV2 &^ api.CoreFeatureSIMD &^ api.CoreFeatureMultiValue

// runner is the wazero side of the engine: the runtimes, their host
// modules, and the modules compiled so far. It lives in the worker process
// and runs one stage at a time. With a cache directory each module gets a
// runtime of its own, whose wazero cache is the module's directory there
// (see cache.go), so that a damaged entry can be found and removed; without
// one, all share a runtime with an in-memory cache.
type runner struct {
	cfg    runnerConfig
	shared *wazeroRuntime            // without a cache directory
	mods   map[string]*compiledStage // by module digest
}

type compiledStage struct {
	rt  *wazeroRuntime
	mod wazero.CompiledModule
}

// wazeroRuntime is a runtime with WASI and kiln_hostfs instantiated.
type wazeroRuntime struct {
	rt    wazero.Runtime
	cache wazero.CompilationCache
}

// runnerConfig holds what newRunner needs; closeOnDone exists only so the
// benchmark can measure what wazero's own interruption costs.
type runnerConfig struct {
	cacheDir    string
	memoryLimit uint64
	closeOnDone bool
}

func newRunner(ctx context.Context, cfg runnerConfig) (*runner, error) {
	r := &runner{cfg: cfg, mods: map[string]*compiledStage{}}
	if cfg.cacheDir == "" {
		rt, err := r.newRuntime(ctx, wazero.NewCompilationCache())
		if err != nil {
			return nil, err
		}
		r.shared = rt
	}
	return r, nil
}

func (r *runner) newRuntime(ctx context.Context, cache wazero.CompilationCache) (*wazeroRuntime, error) {
	// Debug info off: with it, wazero reads a module's DWARF to put source
	// lines in the stack trace it builds on every proc_exit, success
	// included, which cost 650 ms per run of a Rust stage whose std
	// carries DWARF. Traps still name the wasm functions.
	rc := wazero.NewRuntimeConfig().
		WithCoreFeatures(stageFeatures).
		WithCompilationCache(cache).
		WithCloseOnContextDone(r.cfg.closeOnDone).
		WithDebugInfoEnabled(false)
	w := &wazeroRuntime{rt: wazero.NewRuntimeWithConfig(ctx, rc), cache: cache}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, w.rt); err != nil {
		_ = w.close(ctx)
		return nil, fmt.Errorf("instantiating WASI: %w", err)
	}
	if err := instantiateHostModules(ctx, w.rt); err != nil {
		_ = w.close(ctx)
		return nil, err
	}
	return w, nil
}

func (w *wazeroRuntime) close(ctx context.Context) error {
	return errors.Join(w.rt.Close(ctx), w.cache.Close(ctx))
}

func (r *runner) close(ctx context.Context) error {
	var errs []error
	if r.shared != nil {
		errs = append(errs, r.shared.close(ctx))
	}
	for _, m := range r.mods {
		if m.rt != r.shared {
			errs = append(errs, m.rt.close(ctx))
		}
	}
	return errors.Join(errs...)
}

// load returns the compiled module for digest, compiling wasm if this runner
// has not seen it. A compile goes through the on-disk cache first, so a new
// worker pays only for loading machine code; warn receives what the caller
// should hear about the cache (a damaged entry, compiled again).
func (r *runner) load(ctx context.Context, digest string, wasm []byte, warn func(string)) (*compiledStage, failKind, error) {
	if m, ok := r.mods[digest]; ok {
		return m, failNone, nil
	}
	if wasm == nil {
		return nil, failUnknown, fmt.Errorf("module %s was never sent to this worker", digest)
	}
	// Tables are bounded before anything compiles: wazero allocates a
	// table's minimum at instantiation and grows it on table.grow.
	wasm, elems, err := boundTables(wasm)
	if err != nil {
		return nil, failModule, fmt.Errorf("reading its tables: %w", err)
	}
	if elems > maxTableElements {
		return nil, failMemory, fmt.Errorf("module's tables declare %d elements, over kiln's limit of %d", elems, maxTableElements)
	}
	var rt *wazeroRuntime
	var m wazero.CompiledModule
	if r.cfg.cacheDir == "" {
		rt = r.shared
		m, err = rt.rt.CompileModule(ctx, wasm)
	} else {
		rt, m, err = r.compileCached(ctx, digest, wasm, warn)
	}
	if err != nil {
		return nil, failModule, err
	}
	refuse := func(kind failKind, err error) (*compiledStage, failKind, error) {
		_ = m.Close(ctx)
		if rt != r.shared {
			_ = rt.close(ctx)
		}
		return nil, kind, err
	}
	if _, ok := m.ExportedFunctions()["_start"]; !ok {
		return refuse(failModule, errors.New("module exports no _start function: not a WASI command"))
	}
	// wazero would only say "module[env] not instantiated"; name the
	// import instead.
	for _, fn := range m.ImportedFunctions() {
		if mod, name, _ := fn.Import(); mod != wasi_snapshot_preview1.ModuleName && mod != hostModuleName {
			return refuse(failModule, fmt.Errorf("module imports %s.%s: a stage can import only %s and %s",
				mod, name, wasi_snapshot_preview1.ModuleName, hostModuleName))
		}
	}
	// The allocator cannot refuse the initial size (wazero would panic),
	// so a module that starts too big is refused here.
	mems := m.ImportedMemories()
	for _, mem := range m.ExportedMemories() {
		mems = append(mems, mem)
	}
	need := elems * tableElementSize
	for _, mem := range mems {
		need += uint64(mem.Min()) * wasmPage
	}
	if need > r.cfg.memoryLimit {
		msg := fmt.Sprintf("module needs %d MiB of memory to start", need>>20)
		if elems > 0 {
			msg = fmt.Sprintf("module needs %d MiB of memory (tables of up to %d elements included)", need>>20, elems)
		}
		return refuse(failMemory, errors.New(msg))
	}
	cs := &compiledStage{rt: rt, mod: m}
	r.mods[digest] = cs
	return cs, failNone, nil
}

// compileCached compiles wasm in a runtime whose wazero cache is the
// module's own directory, checked against kiln's checksums first. A damaged
// entry (or one wazero itself refuses) is removed and the module compiled
// again, with a warning.
func (r *runner) compileCached(ctx context.Context, digest string, wasm []byte, warn func(string)) (*wazeroRuntime, wazero.CompiledModule, error) {
	dir := filepath.Join(r.cfg.cacheDir, digest)
	files, _, reason, err := verifyModuleCache(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("checking the compiled-module cache %s: %w", dir, err)
	}
	damaged := func(reason string) error {
		warn(fmt.Sprintf("the compiled-module cache entry %s was damaged (%s): removed it, compiling the module again", dir, reason))
		files = nil
		return removeCacheEntry(dir)
	}
	if reason != "" {
		if err := damaged(reason); err != nil {
			return nil, nil, fmt.Errorf("removing the damaged compiled-module cache entry %s: %w", dir, err)
		}
	}
	for attempt := 0; ; attempt++ {
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the compiled-module cache %s: %w", dir, err)
		}
		rt, err := r.newRuntime(ctx, cache)
		if err != nil {
			_ = cache.Close(ctx)
			return nil, nil, err
		}
		m, err := rt.rt.CompileModule(ctx, wasm)
		if err == nil {
			if len(files) == 0 {
				// A miss: wazero has written the entry. Record it.
				if files, _, err = cacheFiles(dir); err == nil {
					err = writeModuleSum(dir, files)
				}
				if err != nil {
					warn(fmt.Sprintf("recording the checksum of the compiled-module cache entry %s: %v", dir, err))
				}
			}
			return rt, m, nil
		}
		_ = rt.close(ctx)
		if len(files) == 0 && strings.Contains(err.Error(), dir) {
			// Writing the new entry failed (a full disk, a read-only
			// store): the cache only saves time, so compile without it.
			warn(fmt.Sprintf("could not write the compiled-module cache (%v): compiling %s without it", err, digest))
			rt, err := r.newRuntime(ctx, wazero.NewCompilationCache())
			if err != nil {
				return nil, nil, err
			}
			m, err := rt.rt.CompileModule(ctx, wasm)
			if err != nil {
				_ = rt.close(ctx)
				return nil, nil, err
			}
			return rt, m, nil
		}
		// wazero prefixes what it finds wrong with an entry so.
		if attempt > 0 || len(files) == 0 || !strings.Contains(err.Error(), "compilationcache") {
			return nil, nil, err
		}
		if rerr := damaged(err.Error()); rerr != nil {
			return nil, nil, fmt.Errorf("%w; removing the damaged compiled-module cache entry %s: %w", err, dir, rerr)
		}
	}
}

// run runs one stage to completion. The guest cannot be interrupted here
// (see docs/stage-abi.md, "Stopping a stage"): the parent kills the whole
// worker for that.
func (r *runner) run(ctx context.Context, req *stageRequest, stdout, stderr io.Writer, started func()) outcome {
	var warnings []string
	compiled, kind, err := r.load(ctx, req.Digest, req.Wasm, func(w string) { warnings = append(warnings, w) })
	if err != nil {
		return outcome{Fail: kind, Err: err.Error(), Warnings: warnings}
	}
	started()
	out := outcome{Loaded: true, Warnings: warnings}

	mounts, err := openMounts(req)
	if err != nil {
		out.Fail, out.Err = failSetup, err.Error()
		return out
	}
	defer mounts.close()

	alloc := &limitAllocator{limit: r.cfg.memoryLimit}
	ctx = experimental.WithMemoryAllocator(ctx, alloc)
	ctx = mounts.withContext(ctx)

	cfg := wazero.NewModuleConfig().
		// Anonymous, so that nothing stops the same module running again.
		WithName("").
		WithArgs(req.Name).
		WithEnv("SOURCE_DATE_EPOCH", strconv.FormatInt(req.Epoch, 10)).
		WithEnv("KILN_STAGE", req.Name).
		WithEnv("KILN_STAGE_ID", req.ID).
		WithStdin(bytes.NewReader(req.Options)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithFSConfig(mounts.fsConfig()).
		WithWalltime(fixedWalltime(req.Epoch), 1).
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(stageRand(req.ID))

	// Instantiate first and call _start separately, so that a link error
	// (an import kiln does not provide) is told apart from a trap.
	mod, err := compiled.rt.rt.InstantiateModule(ctx, compiled.mod, cfg.WithStartFunctions())
	if err != nil {
		out.Fail, out.Err = failModule, fmt.Sprintf("instantiating: %v", err)
		return out
	}
	// A C or Rust command that returns from main without calling exit
	// leaves its instance open; after proc_exit this does nothing.
	defer mod.Close(ctx)
	_, err = mod.ExportedFunction("_start").Call(ctx)
	var exit *sys.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		out.ExitCode = exit.ExitCode()
	default:
		out.Trap = err.Error()
	}
	out.Refused = alloc.refused.Load()
	return out
}

// fixedWalltime pins the guest's wall clock to SOURCE_DATE_EPOCH: whatever a
// stage stamps with "now" is the same in every build.
func fixedWalltime(epoch int64) sys.Walltime {
	return func() (int64, int32) { return epoch, 0 }
}

// stageRand is the guest's random_get source: ChaCha8 keyed by the stage id,
// so that a stage generating a machine id or salt produces the same bytes
// every time it runs with the same id, and different bytes for another id.
func stageRand(id string) io.Reader {
	return rand.NewChaCha8(sha256.Sum256([]byte(id)))
}
