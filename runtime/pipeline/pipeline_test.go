package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/registry"
	"github.com/kilnbuild/kiln/runtime/sources"
	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/mountns"
)

func TestMain(m *testing.M) {
	engine.MaybeRunWorker()
	mountns.MustEnter()
	os.Exit(m.Run())
}

var (
	guestOnce sync.Once
	guestMod  *engine.Module
	guestErr  error
)

// guest builds testdata/guest once per test binary.
func guest(t *testing.T) *engine.Module {
	t.Helper()
	guestOnce.Do(func() {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("kiln-pipeline-guest-%d.wasm", os.Getpid()))
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			guestErr = fmt.Errorf("building the test guest: %v\n%s", err, b)
			return
		}
		defer os.Remove(out)
		guestMod, guestErr = engine.ReadModuleFile(out)
	})
	if guestErr != nil {
		t.Fatal(guestErr)
	}
	return guestMod
}

// newTestRegistry provides the guest's stages, through the registry as
// kiln's own: test.write has a schema, the others run unvalidated.
// Extra stages (on the guest's module) are added.
func newTestRegistry(t *testing.T, extra ...registry.BuiltinStage) *registry.Registry {
	mod := guest(t)
	stage := func(name, schema string) registry.BuiltinStage {
		s := registry.BuiltinStage{Name: name, Summary: "test", Module: mod, ModuleName: "guest.wasm"}
		if schema != "" {
			s.Schema = []byte(schema)
		}
		return s
	}
	stages := []registry.BuiltinStage{
		stage("test.write", `{"type": "object", "additionalProperties": false,
	  "required": ["path"], "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}`),
		stage("test.copy", ""), stage("test.fail", ""), stage("test.ls", ""),
	}
	for _, x := range extra {
		x.Module, x.ModuleName = mod, "guest.wasm"
		stages = append(stages, x)
	}
	reg, err := registry.NewFrom(registry.Builtins{Stages: stages, Assemblers: assembler.Builtins()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// sel is p with the stages checkpoints and exports select committed and
// exported (the ids stay).
func sel(t *testing.T, p *Plan, checkpoints, exports []string) *Plan {
	t.Helper()
	q := *p
	if err := q.selectCommits(checkpoints, exports); err != nil {
		t.Fatal(err)
	}
	return &q
}

const testEpoch = 1700000000

type env struct {
	t   *testing.T
	st  *store.Store
	eng *engine.Engine
	reg *registry.Registry
	out string
}

func newEnv(t *testing.T) *env {
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := engine.New(t.Context(), engine.Config{CacheDir: filepath.Join(os.TempDir(), "kiln-pipeline-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &env{t: t, st: st, eng: eng, reg: newTestRegistry(t), out: t.TempDir()}
}

func (e *env) plan(doc string) *Plan {
	e.t.Helper()
	m, err := manifest.Parse("test.json", []byte(doc))
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := NewPlan("test.json", m, e.reg, PlanConfig{Epoch: testEpoch})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) run(p *Plan, mod func(*Options)) (*Result, error) {
	opts := Options{Store: e.st, Engine: e.eng, OutputDir: e.out}
	if mod != nil {
		mod(&opts)
	}
	return Run(e.t.Context(), p, opts)
}

func writes(contents ...string) string {
	var stages []string
	for i, c := range contents {
		stages = append(stages, fmt.Sprintf(`{"name": "test.write", "options": {"path": "/f%d", "content": %q}}`, i, c))
	}
	return `{"pipeline": {"stages": [` + strings.Join(stages, ",") + `]}}`
}

// ran lists which stages ran (were not served from the store).
func ran(res *Result) []int {
	var idx []int
	for _, s := range res.Stages {
		if !s.Cached {
			idx = append(idx, s.Index)
		}
	}
	return idx
}

func TestCaching(t *testing.T) {
	e := newEnv(t)
	p := e.plan(writes("a", "b", "c"))
	// Stage 0 is checkpointed (by an id prefix), so a change after it can
	// start from its stored result.
	res, err := e.run(sel(t, p, []string{p.Stages[0].ID[:12]}, []string{p.TreeID}), func(o *Options) {
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stages[0].Checkpointed || res.Stages[1].Checkpointed {
		t.Error("checkpoint not reported on stage 0 alone")
	}
	if got := fmt.Sprint(ran(res)); got != "[0 1 2]" {
		t.Errorf("first build ran %s, want all", got)
	}
	first, err := os.ReadFile(filepath.Join(e.out, p.TreeID, "f2"))
	if err != nil || string(first) != "c" {
		t.Fatalf("exported tree: %q %v", first, err)
	}

	res, err = e.run(sel(t, p, nil, []string{p.TreeID}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran(res)); got != "[]" {
		t.Errorf("second build ran %s, want none", got)
	}

	// Changing stage 1 re-runs stages 1 and 2 only.
	p2 := e.plan(writes("a", "B", "c"))
	if p2.Stages[0].ID != p.Stages[0].ID || p2.Stages[1].ID == p.Stages[1].ID || p2.Stages[2].ID == p.Stages[2].ID {
		t.Fatal("ids do not follow the change")
	}
	res, err = e.run(p2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran(res)); got != "[1 2]" {
		t.Errorf("after changing stage 1, ran %s, want [1 2]", got)
	}
}

func TestOptionsFormattingDoesNotChangeIDs(t *testing.T) {
	e := newEnv(t)
	a := e.plan(`{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/x", "content": "1"}}]}}`)
	b := e.plan("{\"pipeline\": {\"stages\": [{\"name\": \"test.write\", \"options\": {\n\"content\": \"1\",   \"path\": \"/x\"}}]}}")
	if a.TreeID != b.TreeID {
		t.Error("equal options in another key order or spacing changed the id")
	}
}

func TestBadOptions(t *testing.T) {
	e := newEnv(t)
	m, err := manifest.Parse("bad.json", []byte(`{"pipeline": {"stages": [
	  {"name": "test.write", "options": {"path": "/ok"}},
	  {"name": "test.write", "options": {"path": 7, "colour": "red"}},
	  {"name": "no.such.stage"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPlan("bad.json", m, e.reg, PlanConfig{Epoch: testEpoch})
	if !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("NewPlan = %v, want ErrInvalid", err)
	}
	for _, want := range []string{
		"bad.json: $.pipeline.stages[1].options: stage 1 (test.write): bad options",
		"$.pipeline.stages[1].options.path: ", "colour",
		"$.pipeline.stages[2].name: stage 2 (no.such.stage): unknown stage",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestFailingStage(t *testing.T) {
	e := newEnv(t)
	p := e.plan(`{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/a"}}, {"name": "test.fail"}]}}`)
	res, err := e.run(p, nil)
	if !errors.Is(err, ErrStageFailed) || !errors.Is(err, engine.ErrExit) {
		t.Fatalf("Run = %v, want a stage failure", err)
	}
	last := res.Stages[len(res.Stages)-1]
	if last.Name != "test.fail" || last.Err == nil || !strings.Contains(string(last.Log), "about to fail") {
		t.Errorf("failed stage result %+v", last)
	}
	if !strings.Contains(err.Error(), "$.pipeline.stages[1]") || !strings.Contains(err.Error(), "failing on purpose") {
		t.Errorf("error does not say which stage failed and why: %v", err)
	}
	tmp, _ := os.ReadDir(filepath.Join(e.st.Root(), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries after a failed build", len(tmp))
	}
}

func TestBuildPipelineAndSources(t *testing.T) {
	e := newEnv(t)
	content := "from a source\n"
	h := sha256.Sum256([]byte(content))
	sum := "sha256:" + hex.EncodeToString(h[:])
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("m.json", []byte(`{
	  "pipeline": {
	    "build": {"runner": "org.osbuild.linux", "pipeline": {"stages": [
	      {"name": "test.write", "options": {"path": "/usr/bin/tool", "content": "build tool"}}]}},
	    "stages": [
	      {"name": "test.copy", "options": {"from": "/run/kiln/build/usr/bin/tool", "to": "/tool"}},
	      {"name": "test.copy", "options": {"from": "/run/kiln/sources/org.osbuild.files/`+sum+`", "to": "/src"}},
	      {"name": "test.ls", "options": {"dir": "/run/kiln/sources/org.osbuild.files", "to": "/none.txt"}},
	      {"name": "test.ls", "options": {"dir": "/run/kiln/sources/org.osbuild.files", "to": "/sources.txt", "uses": "`+sum+`"}}
	    ]
	  },
	  "sources": {"org.osbuild.files": {"urls": {"`+sum+`": "file://`+src+`"}}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan("m.json", m, e.reg, PlanConfig{Epoch: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	fetcher := &sources.Fetcher{Dir: SourcesDir(e.st.Root()),
		Temp: func() (sources.TempDir, error) { return e.st.NewTempDir("src") }}
	// Another build fetched this one; this build's stages must not see it.
	other := sha256.Sum256([]byte("other"))
	otherPath := fetcher.Path("sha256:" + hex.EncodeToString(other[:]))
	if err := os.MkdirAll(filepath.Dir(otherPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherPath, []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := e.run(sel(t, p, nil, []string{p.TreeID}), func(o *Options) { o.Fetcher = fetcher })
	if err != nil {
		t.Fatal(err)
	}
	if p.BuildID == "" || p.Stages[0].ID == p.Build.Stages[0].ID {
		t.Fatal("build pipeline ids missing")
	}
	// A stage sees the sources its options name, no others: not the
	// manifest's other ones, not what the store fetched for other builds.
	for name, want := range map[string]string{"tool": "build tool", "src": content, "none.txt": "", "sources.txt": sum + "\n"} {
		b, err := os.ReadFile(filepath.Join(e.out, p.TreeID, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if len(res.Stages) != 5 || res.Stages[0].Pipeline != "build" {
		t.Errorf("results: %+v", res.Stages)
	}
}

func TestCanceled(t *testing.T) {
	e := newEnv(t)
	p := e.plan(writes("a"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Run(ctx, p, Options{Store: e.st, Engine: e.eng, OutputDir: e.out})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a canceled context = %v", err)
	}
	tmp, _ := os.ReadDir(filepath.Join(e.st.Root(), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries after a canceled build", len(tmp))
	}
}

// TestStoredAssemblerNotRerun: stages that run only for a new export leave
// a stored assembler output alone.
func TestStoredAssemblerNotRerun(t *testing.T) {
	e := newEnv(t)
	p := e.plan(`{"pipeline": {"stages": [{"name": "test.write", "options": {"path": "/a"}}],
	  "assembler": {"name": "org.osbuild.noop"}}}`)
	res, err := e.run(p, nil)
	if err != nil || res.Assembler == nil || res.Assembler.Cached {
		t.Fatalf("first build: %v, assembler %+v", err, res.Assembler)
	}
	res, err = e.run(sel(t, p, nil, []string{p.TreeID}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran(res)); got != "[0]" || !res.Assembler.Cached {
		t.Errorf("export build ran stages %s, assembler cached %v; want [0] and true", got, res.Assembler.Cached)
	}
}

func TestEpochInIDs(t *testing.T) {
	e := newEnv(t)
	m, err := manifest.Parse("m.json", []byte(writes("a")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewPlan("m.json", m, e.reg, PlanConfig{Epoch: 0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPlan("m.json", m, e.reg, PlanConfig{Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if a.TreeID == b.TreeID {
		t.Error("builds at different SOURCE_DATE_EPOCHs share a stage id")
	}
}

// TestExportBeforeStoredStage: exporting a stage that was never committed,
// before one that was, runs from the start instead of failing.
func TestExportBeforeStoredStage(t *testing.T) {
	e := newEnv(t)
	p := e.plan(writes("a", "b", "c"))
	if _, err := e.run(sel(t, p, []string{p.Stages[1].ID}, nil), nil); err != nil {
		t.Fatal(err)
	}
	res, err := e.run(sel(t, p, nil, []string{p.Stages[0].ID}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran(res)); got != "[0 1 2]" {
		t.Errorf("ran %s, want [0 1 2]", got)
	}
	if b, err := os.ReadFile(filepath.Join(e.out, p.Stages[0].ID, "f0")); err != nil || string(b) != "a" {
		t.Errorf("exported stage 0: %q %v", b, err)
	}
}

// TestDamagedObjectRebuilt (trust issue, item 17): a build that finds a
// stored object damaged (here the checkpoint it would start from, and the
// exported tree) rebuilds it in the same build instead of failing on it or
// serving the damage.
func TestDamagedObjectRebuilt(t *testing.T) {
	e := newEnv(t)
	p := e.plan(writes("a", "b"))
	all := sel(t, p, []string{"*"}, []string{p.TreeID})
	if _, err := e.run(all, nil); err != nil {
		t.Fatal(err)
	}
	refs, err := e.st.Refs()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{p.Stages[0].ID, p.Stages[1].ID} {
		f := filepath.Join(e.st.Root(), "objects", refs[id], "f0")
		if err := os.WriteFile(f, []byte("X"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(e.out, p.TreeID)); err != nil {
		t.Fatal(err)
	}
	res, err := e.run(all, nil)
	if err != nil {
		t.Fatalf("build beside damaged objects: %v", err)
	}
	if got := fmt.Sprint(ran(res)); got != "[0 1]" {
		t.Errorf("ran %s, want both stages rebuilt", got)
	}
	got, err := os.ReadFile(filepath.Join(e.out, p.TreeID, "f0"))
	if err != nil || string(got) != "a" {
		t.Errorf("exported f0 = %q, %v; want the rebuilt %q", got, err, "a")
	}
}
