package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/sources"
	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/crashpoint"
)

// StageRunner runs one stage: an *engine.Engine, or Build's, which starts
// one only when a stage must run, so that a build the store serves whole
// starts no worker process.
type StageRunner interface {
	Run(ctx context.Context, inv engine.Invocation) (engine.Result, error)
}

// Options configures Run: where and how the plan is built. What the ids
// depend on (the epoch, the sources, the selected checkpoints and exports)
// is in the plan.
type Options struct {
	Store  *store.Store
	Engine StageRunner
	// Fetcher fetches the plan's sources; nil, a fetcher into the store's
	// SourcesDir, reading file: sources relative to the manifest's
	// directory, from beneath FileRoots. Its Progress is Run's.
	Fetcher *sources.Fetcher
	// FileRoots, when not empty, are the only directories file:// sources
	// may be read from (sources.Fetcher.FileRoots); used when Fetcher is
	// nil.
	FileRoots []string
	// StageTimeout limits each stage's run; zero means none.
	StageTimeout time.Duration
	// OutputDir receives the assembler's output and the exports.
	OutputDir string
	// ExportMode says who may reach into the trees exported to OutputDir.
	ExportMode ExportMode
	// Events, if set, hears about progress, one call at a time (sources
	// download in parallel, but their reports are serialised).
	Events func(Event)
}

// EventKind says what an Event reports.
type EventKind int

const (
	StageStarted EventKind = iota
	StageLog               // Log holds new output of the running stage
	StageFinished
	AssemblerStarted
	AssemblerFinished
	SourceProgress // File, Done, Total, Cached
	// Waiting: another build (in any process) is making the object ID
	// that this one needs; this build waits for it and then uses it.
	Waiting
	// Planned: Build made the plan (Plan) and opened the store
	// (StoreRoot, having removed Recovered leftovers of interrupted
	// runs); nothing has been fetched or run yet.
	Planned
)

// Event is a progress report.
type Event struct {
	Kind   EventKind
	Result *StageResult // for stage and assembler events
	Log    []byte
	File   sources.File
	Done   int64
	Total  int64
	Cached bool
	ID     string // for Waiting

	Plan      *Plan // for Planned
	StoreRoot string
	Recovered int
}

// StageResult is what happened to one stage (or the assembler).
type StageResult struct {
	Pipeline     string // "build" (nested as "build.build") or "" for the main pipeline
	Index        int
	Name         string
	ID           string
	Path         string // JSON path in the manifest
	Cached       bool   // its result came from the store
	Skipped      bool   // not needed: a later result was cached
	Checkpointed bool
	Origin       string        // where its module came from
	Shadows      bool          // a user stage replaced the built-in one
	Unvalidated  bool          // its module carries no schema
	Duration     time.Duration // from preparing the tree to the stage's end
	Prepare      time.Duration // of Duration, making the tree writable (a copy of the base after a commit)
	Setup        time.Duration // of Duration, starting the stage's module (compiling it the first time)
	Commit       time.Duration // after Duration, storing the tree (a checkpoint or a build pipeline's end)
	Log          []byte
	Err          error
}

// Result is what Run did.
type Result struct {
	TreeID      string
	BuildID     string
	AssemblerID string
	Stages      []*StageResult // build pipelines first
	Assembler   *StageResult
	Outputs     []string // paths of the files written to OutputDir
}

// ErrNoMatch is returned for a --checkpoint or --export that names no
// stage of the plan.
var ErrNoMatch = errors.New("matches no stage")

// ErrStageFailed is wrapped by Run's error when a stage or the assembler
// failed (as opposed to bad input or an I/O problem).
var ErrStageFailed = errors.New("build step failed")

type runner struct {
	emitMu  sync.Mutex // Events is called one at a time
	opts    Options
	epoch   int64 // the plan's
	res     *Result
	keep    map[string]bool // ids to commit (the plan's)
	exports map[string]bool // ids to export (and so to hold)
	// holds keep what this build will export (the assembler's output and
	// the exported trees) from gc, from when it is found or committed
	// until Run returns.
	holds map[string]*store.Hold
	// fetcher holds the plan's sources, which each stage's view shows.
	fetcher *sources.Fetcher
	sources []sources.File
}

// Run builds the plan: at its epoch, with its sources, committing and
// exporting what its selectors chose (Build makes the plan and calls Run;
// call Run directly to build a plan against a store and engine of your
// own). On failure the store stays consistent: every object is closed and
// only completed commits remain.
//
// Builds running at the same time, in any processes, share their work: a
// build about to make an object (a committed stage, a build pipeline's
// tree, the assembler's output) takes that object's lock in the store
// first, so that a second build making the same object waits and then
// uses it instead of running the same stages again. And what a build has
// found or made for its output is held until it is exported, so that
// `kiln store gc` cannot remove it in between.
func Run(ctx context.Context, plan *Plan, opts Options) (*Result, error) {
	r := &runner{opts: opts, epoch: plan.Epoch, res: &Result{TreeID: plan.TreeID, BuildID: plan.BuildID},
		keep: plan.keep, exports: map[string]bool{}, holds: map[string]*store.Hold{}, sources: plan.Sources}
	defer r.releaseHolds()
	exports := plan.exports
	for _, id := range exports {
		r.exports[id] = true
	}
	var f sources.Fetcher
	if opts.Fetcher != nil {
		f = *opts.Fetcher
	} else {
		st := opts.Store
		f = sources.Fetcher{
			Dir:       SourcesDir(st.Root()),
			Temp:      func() (sources.TempDir, error) { return st.NewTempDir("src") },
			FileRoots: opts.FileRoots,
			BaseDir:   plan.baseDir(),
		}
	}
	f.Progress = func(file sources.File, done, total int64, cached bool) {
		r.emit(Event{Kind: SourceProgress, File: file, Done: done, Total: total, Cached: cached})
	}
	r.fetcher = &f
	if len(plan.Sources) > 0 {
		if err := f.Fetch(ctx, plan.Sources); err != nil {
			return r.res, err
		}
	}
	if err := r.runMain(ctx, plan, exports); err != nil {
		return r.res, err
	}
	if plan.Assembler != nil {
		r.res.AssemblerID = plan.Assembler.ID
		outs, err := exportFiles(ctx, opts.Store, plan.Assembler.ID, opts.OutputDir, opts.ExportMode)
		if err != nil {
			return r.res, err
		}
		r.res.Outputs = append(r.res.Outputs, outs...)
	}
	for _, id := range exports {
		out, err := exportTree(ctx, opts.Store, id, opts.OutputDir, opts.ExportMode)
		if err != nil {
			return r.res, err
		}
		r.res.Outputs = append(r.res.Outputs, out)
	}
	return r.res, nil
}

func (r *runner) emit(e Event) {
	if r.opts.Events != nil {
		r.emitMu.Lock()
		defer r.emitMu.Unlock()
		r.opts.Events(e)
	}
}

// selectCommits resolves the checkpoint and export selectors to the ids
// to commit and export.
func (p *Plan) selectCommits(checkpoints, exports []string) error {
	all := allStages(p)
	match := func(pattern string) []string {
		var ids []string
		for _, s := range all {
			ok, _ := path.Match(pattern, s.Name)
			if ok || s.ID == pattern || (len(pattern) >= 8 && strings.HasPrefix(s.ID, pattern)) {
				ids = append(ids, s.ID)
			}
		}
		return ids
	}
	keep := map[string]bool{}
	for _, c := range checkpoints {
		ids := match(c)
		if len(ids) == 0 {
			return fmt.Errorf("--checkpoint %q %w (give an id, 8+ digits of one, a stage name or a glob)", c, ErrNoMatch)
		}
		for _, id := range ids {
			keep[id] = true
		}
	}
	var exp []string
	for _, e := range exports {
		ids := match(e)
		if len(ids) == 0 {
			return fmt.Errorf("--export %q %w (give an id, 8+ digits of one, a stage name or a glob)", e, ErrNoMatch)
		}
		for _, id := range ids {
			keep[id] = true
		}
		exp = append(exp, ids...)
	}
	p.Checkpoints, p.Exports, p.keep, p.exports = checkpoints, exports, keep, exp
	return nil
}

func allStages(p *Plan) []PlannedStage {
	var all []PlannedStage
	if p.Build != nil {
		all = append(all, allStages(p.Build)...)
	}
	return append(all, p.Stages...)
}

// hold keeps the stored object id from gc until Run returns. It reports
// false if the store lacks id, or holds it damaged: the store has then
// dropped its refs, so the build makes it again.
func (r *runner) hold(ctx context.Context, id string) (bool, error) {
	if r.holds[id] != nil {
		return true, nil
	}
	h, err := r.opts.Store.Hold(ctx, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDamaged) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.holds[id] = h
	return true, nil
}

func (r *runner) releaseHolds() {
	for _, h := range r.holds {
		_ = h.Release()
	}
}

// stored reports whether the store holds id; what will be exported is held
// from then on, so that it is still there when it is copied out.
func (r *runner) stored(ctx context.Context, id string) (bool, error) {
	if r.exports[id] {
		return r.hold(ctx, id)
	}
	return r.opts.Store.Contains(id), nil
}

// haveOutputs reports whether everything Run exports is stored (and holds
// it): then no stage needs to run.
func (r *runner) haveOutputs(ctx context.Context, plan *Plan, exports []string) (bool, error) {
	if plan.Assembler == nil {
		return false, nil
	}
	for _, id := range append([]string{plan.Assembler.ID}, exports...) {
		if ok, err := r.hold(ctx, id); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// lockID takes the store's lock on id, telling the user when another build
// holds it.
func (r *runner) lockID(ctx context.Context, id string) (func(), error) {
	return r.opts.Store.LockID(ctx, id, func() { r.emit(Event{Kind: Waiting, ID: id}) })
}

// runMain runs the main pipeline and its assembler, as far as the store
// lacks their results.
func (r *runner) runMain(ctx context.Context, plan *Plan, exports []string) error {
	a := plan.Assembler
	done, err := r.haveOutputs(ctx, plan, exports)
	if err != nil {
		return err
	}
	if !done && a != nil {
		// The assembler's output ends the work; a build of the same
		// manifest waits here for this one, then finds it all stored.
		unlock, err := r.lockID(ctx, a.ID)
		if err != nil {
			return err
		}
		defer unlock()
		if done, err = r.haveOutputs(ctx, plan, exports); err != nil {
			return err
		}
	}
	if done {
		r.report(plan, "", len(plan.Stages)-1, true)
		r.res.Assembler = r.assemblerResult(a, true)
		r.emit(Event{Kind: AssemblerFinished, Result: r.res.Assembler})
		return nil
	}
	obj, err := r.runPipeline(ctx, plan, "", false)
	if err != nil {
		return err
	}
	defer obj.Close()
	if a == nil {
		return nil
	}
	if ok, err := r.hold(ctx, a.ID); err != nil || ok {
		// Stages ran for an export; the assembler's output is stored.
		if ok {
			r.res.Assembler = r.assemblerResult(a, true)
			r.emit(Event{Kind: AssemblerFinished, Result: r.res.Assembler})
		}
		return err
	}
	return r.assemble(ctx, plan, obj)
}

// runPipeline runs what is missing of p and returns the object holding its
// tree (which the caller closes). commitLast commits the final tree even if
// nothing else asks for it.
func (r *runner) runPipeline(ctx context.Context, p *Plan, name string, commitLast bool) (*store.Object, error) {
	st := r.opts.Store
	obj, start, err := r.startObject(ctx, p)
	if err != nil {
		return nil, err
	}
	r.report(p, name, start, false)
	if start == len(p.Stages)-1 {
		return obj, nil // all cached
	}
	// Stages are about to run: they need the build tree. It is read
	// through the build pipeline's own object, which holds it until the
	// stages are done.
	var buildDir string
	if p.Build != nil && p.BuildID != "" {
		bobj, err := r.runPipeline(ctx, p.Build, path.Join(name, "build"), true)
		if err != nil {
			obj.Close()
			return nil, err
		}
		defer bobj.Close()
		rc, err := bobj.Read(ctx)
		if err != nil {
			obj.Close()
			return nil, err
		}
		defer rc.Close()
		buildDir = rc.Path()
	}
	commitAt := func(i int) bool { return r.keep[p.Stages[i].ID] || (commitLast && i == len(p.Stages)-1) }
	for start < len(p.Stages)-1 {
		// Run up to the next commit, holding that commit's lock: a build
		// making the same object waits, then starts from it.
		next := len(p.Stages) - 1
		for i := start + 1; i < len(p.Stages); i++ {
			if commitAt(i) {
				next = i
				break
			}
		}
		unlock := func() {}
		if commitAt(next) {
			id := p.Stages[next].ID
			if unlock, err = r.lockID(ctx, id); err != nil {
				obj.Close()
				return nil, err
			}
			made, err := st.New(ctx, id)
			if err == nil {
				// Another build made it while this one waited.
				unlock()
				obj.Close()
				obj = made
				if _, err := r.stored(ctx, id); err != nil {
					obj.Close()
					return nil, err
				}
				r.reportRange(p, name, start+1, next)
				start = next
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				unlock()
				obj.Close()
				return nil, err
			}
		}
		err := r.runSegment(ctx, obj, p, name, start+1, next, commitAt(next), buildDir)
		unlock()
		if err != nil {
			obj.Close()
			return nil, err
		}
		start = next
	}
	return obj, nil
}

// startObject opens the object p's stages start from: after the last stored
// stage, but before any stage that must be committed (a checkpoint or an
// export) and is not stored yet. It returns the index of the stage the
// object starts as (-1: empty). A base that gc removes between the look
// and the lock is looked for again.
func (r *runner) startObject(ctx context.Context, p *Plan) (*store.Object, int, error) {
	for attempt := 0; ; attempt++ {
		end := len(p.Stages)
		for i, s := range p.Stages {
			if !r.keep[s.ID] {
				continue
			}
			ok, err := r.stored(ctx, s.ID)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				end = i
				break
			}
		}
		start := -1 // last stage whose result is stored
		for i := end - 1; i >= 0; i-- {
			ok, err := r.stored(ctx, p.Stages[i].ID)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				start = i
				break
			}
		}
		base := ""
		if start >= 0 {
			base = p.Stages[start].ID
		}
		// Stages will run in the object: NewHostfs makes their tree now,
		// checking a hardlinked base in the same walk.
		newObject := r.opts.Store.New
		if start < len(p.Stages)-1 {
			newObject = r.opts.Store.NewHostfs
		}
		obj, err := newObject(ctx, base)
		if err == nil {
			return obj, start, nil
		}
		// Each miss is a base gc removed, or one found damaged (the store
		// dropped its refs), so the next look finds an earlier one, and at
		// worst the empty tree, unless other builds keep committing what
		// gc keeps removing.
		missing := errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDamaged)
		if !missing || attempt > 2*len(p.Stages) {
			return nil, 0, err
		}
	}
}

// runSegment runs stages from..to of p in obj, committing the last one if
// commit is set.
func (r *runner) runSegment(ctx context.Context, obj *store.Object, p *Plan, name string, from, to int, commit bool, buildDir string) error {
	for i := from; i <= to; i++ {
		s := &p.Stages[i]
		res := r.stageResult(s, name)
		if err := r.runStage(ctx, obj, s, res, buildDir); err != nil {
			return err
		}
		if commit && i == to {
			start := time.Now()
			if _, err := r.opts.Store.Commit(ctx, obj, s.ID); err != nil {
				return err
			}
			res.Commit = time.Since(start)
			res.Checkpointed = r.keep[s.ID]
			// obj holds the committed tree as its base, so this finds it.
			if _, err := r.stored(ctx, s.ID); err != nil {
				return err
			}
		}
		r.emit(Event{Kind: StageFinished, Result: res})
	}
	return nil
}

func (r *runner) runStage(ctx context.Context, obj *store.Object, s *PlannedStage, res *StageResult, buildDir string) error {
	r.emit(Event{Kind: StageStarted, Result: res})
	start := time.Now()
	sourcesDir, done, err := r.sourcesView(ctx, s)
	if err != nil {
		return err
	}
	defer done()
	// The store's fastest safe strategy for hostfs: reflinks, else
	// hardlinks that hostfs copies up (store/copymode.go).
	w, err := obj.WriteHostfs(ctx)
	if err != nil {
		return err
	}
	res.Prepare = time.Since(start)
	tree, state := w.HostfsTree()
	out, err := r.opts.Engine.Run(ctx, engine.Invocation{
		Name: s.Name, ID: s.ID, Module: s.Info.Module, Options: s.options,
		Tree: tree, TreeState: state, Sources: sourcesDir, Build: buildDir,
		Epoch: r.epoch, Timeout: r.opts.StageTimeout,
		Log: logEvents(func(b []byte) { r.emit(Event{Kind: StageLog, Result: res, Log: b}) }),
	})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	res.Duration, res.Setup, res.Log, res.Err = time.Since(start), out.Setup, out.Log, err
	if err != nil {
		r.emit(Event{Kind: StageFinished, Result: res})
		var se *engine.StageError
		if errors.As(err, &se) {
			return fmt.Errorf("%w: %s stage %d: %w", ErrStageFailed, s.Path, s.Index, err)
		}
		return fmt.Errorf("%s stage %d (%s): %w", s.Path, s.Index, s.Name, err)
	}
	return nil
}

// sourcesView makes what stage s sees at /run/kiln/sources: the sources
// whose checksums its options name, and no others. A stage's id covers its
// options, so it then covers everything the stage can read; a view of
// every source of the manifest (or of the store) would let a stage's
// output change with sources its id does not know about.
func (r *runner) sourcesView(ctx context.Context, s *PlannedStage) (string, func(), error) {
	if r.fetcher == nil {
		return "", func() {}, nil
	}
	var named []sources.File
	for _, f := range r.sources {
		if bytes.Contains(s.options, []byte(f.Checksum)) {
			named = append(named, f)
		}
	}
	view, err := r.opts.Store.NewTempDir("view")
	if err != nil {
		return "", nil, err
	}
	done := func() { _ = view.Remove() }
	if err := r.fetcher.View(ctx, view.Path(), named); err != nil {
		done()
		return "", nil, err
	}
	return view.Path(), done, nil
}

// logEvents turns a stage's live output into events.
type logEvents func([]byte)

func (l logEvents) Write(p []byte) (int, error) {
	l(append([]byte(nil), p...))
	return len(p), nil
}

var _ io.Writer = logEvents(nil)

func (r *runner) stageResult(s *PlannedStage, pipeline string) *StageResult {
	res := &StageResult{
		Pipeline: pipeline, Index: s.Index, Name: s.Name, ID: s.ID, Path: s.Path,
		Origin: s.Info.Origin, Shadows: s.Info.Shadows, Unvalidated: s.Info.Schema == nil,
	}
	r.res.Stages = append(r.res.Stages, res)
	return res
}

// report records stages 0..upto of p as served from the store; skipped
// marks that they were not even checked out because a later result (the
// assembler's output) was stored.
func (r *runner) report(p *Plan, name string, upto int, skipped bool) {
	r.reportStages(p, name, 0, upto, skipped)
}

// reportRange records stages from..to of p as served from the store,
// another build having made them meanwhile: this one went on from stage
// to's result without checking out the ones before it.
func (r *runner) reportRange(p *Plan, name string, from, to int) {
	r.reportStages(p, name, from, to-1, true)
	r.reportStages(p, name, to, to, false)
}

func (r *runner) reportStages(p *Plan, name string, from, to int, skipped bool) {
	for i := from; i <= to && i < len(p.Stages); i++ {
		res := r.stageResult(&p.Stages[i], name)
		res.Cached, res.Skipped = true, skipped
		r.emit(Event{Kind: StageFinished, Result: res})
	}
}

func (r *runner) assemblerResult(a *Assembler, cached bool) *StageResult {
	return &StageResult{Name: a.Name, ID: a.ID, Path: a.Path, Cached: cached, Origin: "built-in", Index: -1}
}

// assemble runs the assembler on obj's tree, read-only, and commits its
// output as the object a.ID.
func (r *runner) assemble(ctx context.Context, plan *Plan, obj *store.Object) error {
	a := plan.Assembler
	res := r.assemblerResult(a, false)
	r.res.Assembler = res
	r.emit(Event{Kind: AssemblerStarted, Result: res})
	start := time.Now()
	err := r.runAssembler(ctx, a, obj)
	res.Duration, res.Err = time.Since(start), err
	r.emit(Event{Kind: AssemblerFinished, Result: res})
	if err != nil {
		if errors.Is(err, assembler.ErrFailed) {
			return fmt.Errorf("%w: %s: %w", ErrStageFailed, a.Path, err)
		}
		return fmt.Errorf("%s: assembler %s: %w", a.Path, a.Name, err)
	}
	return nil
}

func (r *runner) runAssembler(ctx context.Context, a *Assembler, obj *store.Object) error {
	st := r.opts.Store
	tree, err := obj.Read(ctx)
	if err != nil {
		return err
	}
	defer tree.Close()
	out, err := st.New(ctx, "")
	if err != nil {
		return err
	}
	defer out.Close()
	w, err := out.Write(ctx)
	if err != nil {
		return err
	}
	err = a.Impl.Assemble(ctx, assembler.Input{Tree: tree.Path(), Output: w.Path(), Options: a.options, Epoch: r.epoch})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	crashpoint.Hit("assembler.before-commit")
	if _, err = st.Commit(ctx, out, a.ID); err != nil {
		return err
	}
	// out holds its committed output as its base until it is closed:
	// hold it from here until it is exported.
	_, err = r.hold(ctx, a.ID)
	return err
}
