package pipeline

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/registry"
	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/mountns"
)

// BuildConfig is one build: `kiln build` maps its flags onto it, and a
// program embedding kiln fills it in the same way.
type BuildConfig struct {
	// ManifestFile names the manifest ("-": standard input). Relative
	// file: sources are read from its directory.
	ManifestFile string
	// Manifest is the parsed manifest; nil: ManifestFile is loaded.
	Manifest *manifest.Manifest
	// Registry resolves stage and assembler names; nil: kiln's built-ins
	// and the user stages in StagePath (registry.New).
	Registry  *registry.Registry
	StagePath []string

	// Epoch, Checkpoints and Exports go into the plan (PlanConfig).
	Epoch       int64
	Checkpoints []string
	Exports     []string

	// Store is the object store to build in; nil: StoreDir is opened
	// (and closed when Build returns).
	Store    *store.Store
	StoreDir string
	// MemoryLimit is each stage's memory in bytes; 0: the engine's default.
	MemoryLimit uint64
	// StageTimeout, FileRoots, OutputDir and ExportMode are as in Options.
	StageTimeout time.Duration
	FileRoots    []string
	OutputDir    string
	ExportMode   ExportMode
	// Events hears about progress, as in Options; its first event is
	// Planned, before anything is fetched or run.
	Events func(Event)
}

// ErrNoManifest is wrapped by Plan's and Build's error when the manifest
// file does not exist (a wrong path, the caller's mistake).
var ErrNoManifest = errors.New("no such manifest")

type noManifestError struct{ err error }

func (e noManifestError) Error() string        { return e.err.Error() }
func (e noManifestError) Unwrap() error        { return e.err }
func (e noManifestError) Is(target error) bool { return target == ErrNoManifest }

// MakePlan loads the manifest and the registry cfg names and plans the
// build, touching no store: `kiln inspect` shows this plan, and Build runs
// it. Errors wrap manifest.ErrInvalid (the manifest), ErrNoMatch (a
// selector), registry.ErrStagePath (a user stage) or ErrNoManifest.
func MakePlan(cfg BuildConfig) (*Plan, error) {
	m := cfg.Manifest
	if m == nil {
		var err error
		m, err = manifest.Load(cfg.ManifestFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil, noManifestError{err}
		}
		if err != nil {
			return nil, err
		}
	}
	reg := cfg.Registry
	if reg == nil {
		var err error
		if reg, err = registry.New(cfg.StagePath); err != nil {
			return nil, err
		}
	}
	return NewPlan(cfg.ManifestFile, m, reg, PlanConfig{Epoch: cfg.Epoch, Checkpoints: cfg.Checkpoints, Exports: cfg.Exports})
}

// Build plans the build cfg describes and runs it: it loads the manifest
// and the stages, makes the plan (refusing a bad manifest before the store
// is opened), opens the store and the engine, fetches the sources, runs
// what the store lacks and copies the outputs to cfg.OutputDir.
//
// Build first enters kiln's private mount namespace (mountns.Enter): in a
// process not yet in it, that re-executes the program and never returns,
// so a program calling Build does so before reading standard input or
// starting anything it cares about.
//
// The Result is non-nil once the run has started, also on failure, and
// says how far it got.
func Build(ctx context.Context, cfg BuildConfig) (*Result, error) {
	if err := mountns.Enter(); err != nil {
		return nil, err
	}
	plan, err := MakePlan(cfg)
	if err != nil {
		return nil, err
	}
	st := cfg.Store
	if st == nil {
		if st, err = store.Open(ctx, cfg.StoreDir); err != nil {
			return nil, err
		}
		defer st.Close()
	}
	eng := &lazyEngine{cfg: engine.Config{CacheDir: ModuleCacheDir(st.Root()), MemoryLimit: cfg.MemoryLimit}}
	defer eng.Close()
	if cfg.Events != nil {
		cfg.Events(Event{Kind: Planned, Plan: plan, StoreRoot: st.Root(), Recovered: st.Recovered()})
	}
	return Run(ctx, plan, Options{
		Store: st, Engine: eng, FileRoots: cfg.FileRoots, StageTimeout: cfg.StageTimeout,
		OutputDir: cfg.OutputDir, ExportMode: cfg.ExportMode, Events: cfg.Events,
	})
}

// lazyEngine makes its engine (and so the worker process, two execs of
// kiln) when the first stage runs: a rebuild the store serves whole needs
// none.
type lazyEngine struct {
	cfg  engine.Config
	once sync.Once
	eng  *engine.Engine
	err  error
}

func (l *lazyEngine) Run(ctx context.Context, inv engine.Invocation) (engine.Result, error) {
	l.once.Do(func() { l.eng, l.err = engine.New(ctx, l.cfg) })
	if l.err != nil {
		return engine.Result{}, l.err
	}
	return l.eng.Run(ctx, inv)
}

func (l *lazyEngine) Close() error {
	if l.eng == nil {
		return nil
	}
	return l.eng.Close()
}
