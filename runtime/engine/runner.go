package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// stageFeatures are the WebAssembly features a stage may use: what Go's,
// clang's and rustc's wasip1 output needs (Go uses memory.fill and
// memory.copy), and no more. Off: reference types, so that table.grow,
// table.fill and extra tables do not validate and a module's tables cost
// exactly what they declare (checked against the memory limit in load);
// SIMD and multi-value, which none of the toolchains kiln builds with emits
// by default, and which are a large part of wazero's compiler.
const stageFeatures = api.CoreFeaturesV1 |
	api.CoreFeatureBulkMemoryOperations |
	api.CoreFeatureSignExtensionOps |
	api.CoreFeatureNonTrappingFloatToIntConversion

// runner is the wazero side of the engine: one runtime, the host modules,
// and the modules compiled so far. It lives in the worker process and runs
// one stage at a time.
type runner struct {
	rt       wazero.Runtime
	cache    wazero.CompilationCache
	limit    uint64
	compiled map[string]wazero.CompiledModule // by module digest
}

// runnerConfig holds what newRunner needs; closeOnDone exists only so the
// benchmark can measure what wazero's own interruption costs.
type runnerConfig struct {
	cacheDir    string
	memoryLimit uint64
	closeOnDone bool
}

func newRunner(ctx context.Context, cfg runnerConfig) (*runner, error) {
	var cache wazero.CompilationCache
	if cfg.cacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.cacheDir); err != nil {
			return nil, fmt.Errorf("opening compilation cache: %w", err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	// Debug info off: with it, wazero reads a module's DWARF to put source
	// lines in the stack trace it builds on every proc_exit, success
	// included, which cost 650 ms per run of a Rust stage whose std
	// carries DWARF. Traps still name the wasm functions.
	rc := wazero.NewRuntimeConfig().
		WithCoreFeatures(stageFeatures).
		WithCompilationCache(cache).
		WithCloseOnContextDone(cfg.closeOnDone).
		WithDebugInfoEnabled(false)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	r := &runner{rt: rt, cache: cache, limit: cfg.memoryLimit, compiled: map[string]wazero.CompiledModule{}}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = r.close(ctx)
		return nil, fmt.Errorf("instantiating WASI: %w", err)
	}
	if err := instantiateHostModules(ctx, rt); err != nil {
		_ = r.close(ctx)
		return nil, err
	}
	return r, nil
}

func (r *runner) close(ctx context.Context) error {
	return errors.Join(r.rt.Close(ctx), r.cache.Close(ctx))
}

// load returns the compiled module for digest, compiling wasm if this runner
// has not seen it. A compile goes through the on-disk cache first, so a new
// worker pays only for loading machine code.
func (r *runner) load(ctx context.Context, digest string, wasm []byte) (wazero.CompiledModule, failKind, error) {
	if m, ok := r.compiled[digest]; ok {
		return m, failNone, nil
	}
	if wasm == nil {
		return nil, failUnknown, fmt.Errorf("module %s was never sent to this worker", digest)
	}
	m, err := r.rt.CompileModule(ctx, wasm)
	if err != nil {
		if strings.Contains(err.Error(), `"reference-types" is disabled`) {
			err = fmt.Errorf("%w (kiln runs stages without reference types, so that tables cannot grow past what the module declares)", err)
		}
		return nil, failModule, err
	}
	if _, ok := m.ExportedFunctions()["_start"]; !ok {
		_ = m.Close(ctx)
		return nil, failModule, errors.New("module exports no _start function: not a WASI command")
	}
	// wazero would only say "module[env] not instantiated"; name the
	// import instead.
	for _, fn := range m.ImportedFunctions() {
		if mod, name, _ := fn.Import(); mod != wasi_snapshot_preview1.ModuleName && mod != hostModuleName {
			_ = m.Close(ctx)
			return nil, failModule, fmt.Errorf("module imports %s.%s: a stage can import only %s and %s",
				mod, name, wasi_snapshot_preview1.ModuleName, hostModuleName)
		}
	}
	// The allocator cannot refuse the initial size (wazero would panic),
	// so a module that starts too big is refused here.
	mems := m.ImportedMemories()
	for _, mem := range m.ExportedMemories() {
		mems = append(mems, mem)
	}
	elems, err := tableElements(wasm)
	if err != nil {
		_ = m.Close(ctx)
		return nil, failModule, fmt.Errorf("reading its tables: %w", err)
	}
	if elems > maxTableElements {
		_ = m.Close(ctx)
		return nil, failMemory, fmt.Errorf("module's tables declare %d elements, over kiln's limit of %d", elems, maxTableElements)
	}
	need := elems * tableElementSize
	for _, mem := range mems {
		need += uint64(mem.Min()) * wasmPage
	}
	if need > r.limit {
		_ = m.Close(ctx)
		msg := fmt.Sprintf("module needs %d MiB of memory to start", need>>20)
		if elems > 0 {
			msg += fmt.Sprintf(" (tables of %d elements included)", elems)
		}
		return nil, failMemory, errors.New(msg)
	}
	r.compiled[digest] = m
	return m, failNone, nil
}

// run runs one stage to completion. The guest cannot be interrupted here
// (see docs/stage-abi.md, "Stopping a stage"): the parent kills the whole
// worker for that.
func (r *runner) run(ctx context.Context, req *stageRequest, stdout, stderr io.Writer, started func()) outcome {
	compiled, kind, err := r.load(ctx, req.Digest, req.Wasm)
	if err != nil {
		return outcome{Fail: kind, Err: err.Error()}
	}
	started()
	out := outcome{Loaded: true}

	mounts, err := openMounts(req)
	if err != nil {
		out.Fail, out.Err = failSetup, err.Error()
		return out
	}
	defer mounts.close()

	alloc := &limitAllocator{limit: r.limit}
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
	mod, err := r.rt.InstantiateModule(ctx, compiled, cfg.WithStartFunctions())
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
