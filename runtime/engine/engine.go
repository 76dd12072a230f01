package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	// DefaultMemoryLimit is a stage's memory cap when Config leaves it 0.
	DefaultMemoryLimit = 1 << 30
	// DefaultCompileTimeout bounds compiling a module when Config leaves
	// CompileTimeout 0. The stage library's 6 MiB Go module compiles in
	// about a second, 15 s under the race detector and minutes under the
	// race detector on a machine loaded 9 times over its cores; a module
	// built to stall wazero's compiler (deeply nested blocks) takes as
	// long as it is made to.
	DefaultCompileTimeout = 5 * time.Minute
	// DefaultStageTimeout is kiln build's --stage-timeout: long enough for
	// any real stage (osbuild's slowest, package installs, run for
	// minutes), short enough that a stuck build ends the same hour.
	DefaultStageTimeout = time.Hour
	// DefaultOutputLimit is Config.OutputLimit's default.
	DefaultOutputLimit = 64 << 20
	// logLimit bounds the log kept per stage (Result.Log).
	logLimit = 1 << 20
	// spentLogLimit bounds it once the Engine's output limit is spent.
	spentLogLimit = 64 << 10
	// stderrLimit bounds the stderr quoted in a StageError: its start
	// (Go's "fatal error: ..." line, a C stage's first complaint) and its
	// end, as in the log.
	stderrLimit = 4 << 10
)

// Config configures an Engine. The zero value is usable.
type Config struct {
	// CacheDir holds compiled machine code across processes, keyed by
	// wazero version and module. Empty keeps it in memory only, so each
	// new worker compiles every module again.
	CacheDir string
	// MemoryLimit caps each stage's linear memory, in bytes (rounded
	// down to 64 KiB pages). Zero means DefaultMemoryLimit.
	MemoryLimit uint64
	// CompileTimeout bounds compiling (or loading from CacheDir) a module
	// the worker does not hold yet; the stage's own Timeout starts after
	// it. Zero means DefaultCompileTimeout.
	CompileTimeout time.Duration
	// OutputLimit bounds the stage output an Engine (one build) passes
	// to Stage.Log, across all its stages, in bytes: past it Stage.Log
	// gets a note and nothing more, and each later stage keeps a log of
	// 64 KiB instead of 1 MiB. Zero means DefaultOutputLimit.
	OutputLimit int64
	// Warn receives what the user should know that fails nothing: a
	// damaged compiled-module cache entry, compiled again. Nil writes
	// "kiln: warning: ..." lines to stderr.
	Warn func(msg string)
}

// Module is a stage's WebAssembly binary, identified by its digest. Make one
// per binary and reuse it: the digest is computed once, and a worker that
// has compiled it is not sent the bytes again.
type Module struct {
	wasm   []byte
	digest string
}

// NewModule wraps a WASI command module. It does not copy wasm, which must
// not change afterwards.
func NewModule(wasm []byte) *Module {
	sum := sha256.Sum256(wasm)
	return &Module{wasm: wasm, digest: hex.EncodeToString(sum[:])}
}

// NewModuleWithDigest is NewModule for a caller that has hashed wasm
// already (the stage library hashes its modules once as it loads them):
// digest must be the lowercase hex SHA-256 of wasm, since stage ids and the
// worker's cache of compiled modules trust it.
func NewModuleWithDigest(wasm []byte, digest string) *Module {
	return &Module{wasm: wasm, digest: digest}
}

// ReadModuleFile reads a module from a .wasm file, which must be a regular
// file (a symlink to one is fine) of at most MaxModuleSize bytes.
func ReadModuleFile(path string) (*Module, error) {
	wasm, err := ReadRegularFile(path, MaxModuleSize)
	if err != nil {
		return nil, fmt.Errorf("reading stage module: %w", err)
	}
	return NewModule(wasm), nil
}

// Digest is the lowercase hex SHA-256 of the module's bytes.
func (m *Module) Digest() string { return m.digest }

// Invocation is one run of a stage module against a tree, with everything
// the guest sees. The pipeline makes one for each stage of its plan that is
// not stored (pipeline.PlannedStage).
type Invocation struct {
	Name   string  // argv[0] and KILN_STAGE, e.g. "org.osbuild.hostname"
	ID     string  // KILN_STAGE_ID, lowercase hex; seeds the guest's randomness
	Module *Module // the WASI command to run
	// Options is the JSON the stage reads on stdin; nil sends nothing.
	Options json.RawMessage
	// Tree is the host directory mounted read-write at "/".
	Tree string
	// TreeState, when set, is the store's state directory for Tree
	// (store.HostfsWriteContext): hostfs copies shared files up and
	// journals changes (hostfs.WithTreeState).
	TreeState string
	// Sources and Build, when set, are host directories mounted
	// read-only at /run/kiln/sources and /run/kiln/build.
	Sources, Build string
	// Epoch is SOURCE_DATE_EPOCH: the guest's wall clock, frozen.
	Epoch int64
	// Timeout kills the stage if it runs longer, counted from when the
	// worker has the module compiled (neither a worker start nor a cold
	// compile is the stage's time); zero means no limit beyond ctx.
	Timeout time.Duration
	// Log, if set, receives the stage's stdout and stderr as they are
	// written, for progress. Its errors are ignored: a broken terminal
	// must not fail a build.
	Log io.Writer
}

// Result is what a stage left besides its tree.
type Result struct {
	// Log is the stage's stdout and stderr, interleaved in the order
	// written, bounded to 1 MiB (the first and last 512 KiB, with a note
	// in between when output was dropped).
	Log []byte
	// Duration is the wall time Run took, worker start included.
	Duration time.Duration
	// Setup is the part of Duration before the guest started: starting a
	// worker and compiling (or loading from the cache) the module. A cold
	// compile of a large module dominates a quick stage's time.
	Setup time.Duration
}

// Engine runs stages, one at a time, in a worker process that keeps the
// wazero runtime and compiled modules warm between stages.
type Engine struct {
	cfg  Config
	slot chan struct{} // a token is held while a stage runs

	// printed is the stage output passed to Stage.Log so far; only the
	// Run holding slot touches it.
	printed int64

	mu     sync.Mutex
	w      *worker // nil until started, and after a kill
	closed bool
}

// errStageTimeout is the cancellation cause that tells a timeout from the
// caller's own cancellation.
var (
	errStageTimeout   = errors.New("stage timeout")
	errCompileTimeout = errors.New("compile timeout")
)

// New creates an Engine and starts its worker, so that a binary missing its
// MaybeRunWorker call fails here rather than at the first stage.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if os.Getenv(workerEnv) != "" {
		return nil, fmt.Errorf("%w: engine.New called inside a stage worker: main must call engine.MaybeRunWorker first", ErrWorker)
	}
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	cfg.MemoryLimit -= cfg.MemoryLimit % wasmPage
	if cfg.MemoryLimit == 0 || cfg.MemoryLimit > 4<<30 {
		return nil, fmt.Errorf("memory limit %d: must be between 64 KiB and 4 GiB", cfg.MemoryLimit)
	}
	if cfg.OutputLimit <= 0 {
		cfg.OutputLimit = DefaultOutputLimit
	}
	if cfg.CompileTimeout <= 0 {
		cfg.CompileTimeout = DefaultCompileTimeout
	}
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating compilation cache: %w", err)
		}
	}
	e := &Engine{cfg: cfg, slot: make(chan struct{}, 1)}
	if _, err := e.worker(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Close stops the worker, ending any stage still running (its Run returns
// ErrClosed). Close is idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	w := e.w
	e.w, e.closed = nil, true
	e.mu.Unlock()
	if w != nil {
		w.stop()
	}
	return nil
}

// Run runs one stage to completion and returns its log. A stage that fails
// (non-zero exit, trap, memory limit, timeout, cancellation) returns a
// *StageError along with the Result holding its log so far. Run calls on one
// Engine take turns; use one Engine per concurrent build.
//
// Cancelling ctx or passing Invocation.Timeout kills the worker, which stops even
// a guest that never makes a system call; the next Run starts a fresh one.
func (e *Engine) Run(ctx context.Context, st Invocation) (Result, error) {
	req, err := st.request()
	if err != nil {
		return Result{}, err
	}
	select {
	case e.slot <- struct{}{}:
		defer func() { <-e.slot }()
	case <-ctx.Done():
		return Result{}, fmt.Errorf("stage %s: waiting for the engine: %w", st.Name, context.Cause(ctx))
	}
	if err := context.Cause(ctx); err != nil {
		// Not worth a worker: it would be killed as soon as it ran.
		return Result{}, fmt.Errorf("stage %s: not started: %w", st.Name, err)
	}
	start := time.Now()
	w, err := e.worker(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("stage %s: %w", st.Name, err)
	}

	// The timeout runs from when the worker has the module compiled: a
	// cold compile of a large module (a second or more) is kiln's cost,
	// not the stage's, and must not fail a stage with a tight limit.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var timer *time.Timer
	var setup time.Duration
	// Compiling has its own limit, running from when the request is sent:
	// a module can be made to stall wazero's compiler for minutes.
	compileTimer := time.AfterFunc(e.cfg.CompileTimeout, func() { cancel(errCompileTimeout) })
	defer compileTimer.Stop()
	started := func() {
		setup = time.Since(start)
		compileTimer.Stop()
		if st.Timeout > 0 && timer == nil {
			timer = time.AfterFunc(st.Timeout, func() { cancel(errStageTimeout) })
		}
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	keep := logLimit
	if e.printed >= e.cfg.OutputLimit {
		keep = spentLogLimit
	}
	log := newLogBuffer(keep)
	stderr := newLogBuffer(stderrLimit)
	// Output is cleaned of terminal control sequences as it arrives, so
	// that nothing downstream (the live log, Result.Log, the error's
	// stderr) can carry one to a terminal.
	var cleanOut, cleanErr textCleaner
	var buf []byte
	sink := func(stream int, p []byte) {
		if stream == streamStderr {
			buf = cleanErr.append(buf[:0], p)
			_, _ = stderr.Write(buf)
		} else {
			buf = cleanOut.append(buf[:0], p)
		}
		_, _ = log.Write(buf)
		e.forward(st.Log, buf)
	}
	stopKill := context.AfterFunc(runCtx, w.kill)
	out, runErr := w.run(req, sink, started)
	killed := !stopKill()
	res := Result{Log: log.Bytes(), Duration: time.Since(start), Setup: setup}
	if killed || runErr != nil {
		e.discard(w)
	}
	if runErr == nil {
		for _, msg := range out.Warnings {
			e.warn(fmt.Sprintf("stage %s: %s", st.Name, msg))
		}
		return res, e.outcomeError(&st, out, stderr.Bytes())
	}

	se := &StageError{Stage: st.Name, ID: st.ID, Stderr: stderr.Bytes()}
	switch {
	case killed && context.Cause(runCtx) == errStageTimeout:
		se.Err = fmt.Errorf("%w after %s: %w", ErrTimeout, st.Timeout, context.DeadlineExceeded)
	case killed && context.Cause(runCtx) == errCompileTimeout:
		se.Err = fmt.Errorf("%w: compiling module %s took longer than the limit of %s: %w",
			ErrCompileTimeout, shortID(st.Module.Digest()), e.cfg.CompileTimeout, context.DeadlineExceeded)
	case killed:
		// The caller canceled, or its own deadline passed.
		se.Err = fmt.Errorf("stopped: %w", context.Cause(ctx))
	case e.isClosed():
		se.Err = ErrClosed
	default:
		<-w.exited // discard reaped it; waitErr says how it died
		msg := bytes.TrimSpace(w.stderr.Bytes())
		if outOfMemory(msg) {
			// The worker's RLIMIT_DATA stopped it (limitWorker).
			se.Err = fmt.Errorf("%w: the stage worker ran out of its memory bound of %d MiB (twice the stage limit of %d MiB, plus kiln's own %d MiB) (%v)",
				ErrMemoryLimit, workerDataLimit(e.cfg.MemoryLimit)>>20, e.cfg.MemoryLimit>>20, workerOverhead>>20, w.waitErr)
			break
		}
		se.Err = fmt.Errorf("%w: %v (%v)", ErrWorker, runErr, w.waitErr)
		if len(msg) > 0 {
			se.Err = fmt.Errorf("%w; worker stderr: %s", se.Err, msg)
		}
	}
	return res, se
}

func (e *Engine) warn(msg string) {
	if e.cfg.Warn != nil {
		e.cfg.Warn(msg)
		return
	}
	fmt.Fprintf(os.Stderr, "kiln: warning: %s\n", msg)
}

// forward passes stage output to the live log within the Engine's output
// limit, with a note where it stops.
func (e *Engine) forward(w io.Writer, p []byte) {
	if w == nil || len(p) == 0 {
		return
	}
	room := e.cfg.OutputLimit - e.printed
	if room <= 0 {
		return
	}
	if int64(len(p)) >= room {
		p = p[:room]
		if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
			p = p[:i+1]
		}
		_, _ = w.Write(p)
		e.printed = e.cfg.OutputLimit
		_, _ = fmt.Fprintf(w, "\n[kiln: the stages of this build have printed %d MiB, kiln's limit: further output is not shown; each stage's log keeps its first and last %d KiB]\n",
			e.cfg.OutputLimit>>20, spentLogLimit>>11)
		return
	}
	e.printed += int64(len(p))
	_, _ = w.Write(p)
}

// outOfMemory tells from a dead worker's stderr that the Go runtime ran out
// of memory: "fatal error: out of memory", "runtime: out of memory: cannot
// allocate ...", or a failed mmap.
func outOfMemory(stderr []byte) bool {
	return bytes.Contains(stderr, []byte("out of memory")) || bytes.Contains(stderr, []byte("cannot allocate memory"))
}

// outcomeError turns what the worker reported into Run's error.
func (e *Engine) outcomeError(st *Invocation, o outcome, stderr []byte) error {
	// wazero's messages quote the module's own names (functions,
	// exports), which are the module author's text.
	o.Trap, o.Err = StripControls(o.Trap), StripControls(o.Err)
	se := &StageError{Stage: st.Name, ID: st.ID, ExitCode: o.ExitCode, Trap: o.Trap, Stderr: stderr}
	failed := o.ExitCode != 0 || o.Trap != ""
	switch {
	case o.Fail == failSetup:
		return fmt.Errorf("stage %s: %s", st.Name, o.Err)
	case o.Fail == failUnknown:
		return fmt.Errorf("stage %s: %w: %s", st.Name, ErrWorker, o.Err)
	case o.Fail == failModule:
		se.Err = fmt.Errorf("%w %s: %s", ErrInvalidModule, shortID(st.Module.Digest()), o.Err)
	case o.Fail == failMemory:
		se.Err = fmt.Errorf("%w: %s, over the limit of %d MiB", ErrMemoryLimit, o.Err, e.cfg.MemoryLimit>>20)
	case failed && o.Refused:
		se.Err = fmt.Errorf("%w: the limit is %d MiB", ErrMemoryLimit, e.cfg.MemoryLimit>>20)
	case o.Trap != "":
		se.Err = ErrTrap
	case o.ExitCode != 0:
		se.Err = ErrExit
	default:
		return nil
	}
	return se
}

// worker returns the running worker, starting one if there is none.
func (e *Engine) worker(ctx context.Context) (*worker, error) {
	e.mu.Lock()
	w, closed := e.w, e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if w != nil && !w.dead() {
		return w, nil
	}
	if w != nil {
		e.discard(w)
	}
	w, err := startWorker(ctx, workerHello{CacheDir: e.cfg.CacheDir, MemoryLimit: e.cfg.MemoryLimit})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		w.stop()
		return nil, ErrClosed
	}
	e.w = w
	return w, nil
}

// discard stops w and forgets it, so the next stage gets a fresh worker.
func (e *Engine) discard(w *worker) {
	e.mu.Lock()
	if e.w == w {
		e.w = nil
	}
	e.mu.Unlock()
	w.stop()
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// request checks st and turns it into what the worker needs. Directories are
// checked here, in the caller's terms, rather than failing in the worker.
func (st *Invocation) request() (*stageRequest, error) {
	if st.Name == "" {
		return nil, errors.New("stage has no name")
	}
	if st.Module == nil {
		return nil, fmt.Errorf("stage %s: no module", st.Name)
	}
	if _, err := hex.DecodeString(st.ID); err != nil || st.ID == "" {
		return nil, fmt.Errorf("stage %s: id %q is not hex", st.Name, st.ID)
	}
	if n := len(st.Module.wasm); n > MaxModuleSize {
		return nil, fmt.Errorf("stage %s: module %s: %w: %d bytes, over the limit of %d MiB",
			st.Name, shortID(st.Module.digest), ErrTooLarge, n, MaxModuleSize>>20)
	}
	if n := len(st.Options); n > MaxOptionsSize {
		return nil, fmt.Errorf("stage %s: options: %w: %d bytes, over the limit of %d MiB",
			st.Name, ErrTooLarge, n, MaxOptionsSize>>20)
	}
	req := &stageRequest{
		Name: st.Name, ID: st.ID, Epoch: st.Epoch, Options: st.Options,
		Digest: st.Module.digest, Wasm: st.Module.wasm, TreeState: st.TreeState,
	}
	for _, d := range []struct {
		dst      *string
		src, use string
	}{{&req.Tree, st.Tree, "tree"}, {&req.Sources, st.Sources, "sources"}, {&req.Build, st.Build, "build"}} {
		if d.src == "" {
			if d.use == "tree" {
				return nil, fmt.Errorf("stage %s: no tree directory", st.Name)
			}
			continue
		}
		abs, err := filepath.Abs(d.src)
		if err == nil {
			var fi os.FileInfo
			if fi, err = os.Stat(abs); err == nil && !fi.IsDir() {
				err = fmt.Errorf("%s is not a directory", abs)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("stage %s: %s: %w", st.Name, d.use, err)
		}
		*d.dst = abs
	}
	return req, nil
}
