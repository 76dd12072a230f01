package library

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/schema"
)

var update = flag.Bool("update", false, "rewrite the golden expected.txt files from what the stages do")

// TestMain lets the engine re-run this test binary as its stage worker.
func TestMain(m *testing.M) {
	engine.MaybeRunWorker()
	os.Exit(m.Run())
}

// testdata is where the golden cases live, next to the stages.
const testdata = "../stages/testdata"

// goldenEpoch is SOURCE_DATE_EPOCH for every case: 2024-01-01, day 19723.
const goldenEpoch = 1704067200

// built holds the library built once per test binary by build-library.sh.
var built = sync.OnceValues(func() (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", errSkip{"the go command is not on PATH; it builds the stage modules"}
	}
	dir, err := os.MkdirTemp("", "kiln-library-test-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("../build-library.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build-library.sh: %v\n%s", err, out)
	}
	return dir, nil
})

type errSkip struct{ why string }

func (e errSkip) Error() string { return e.why }

// builtLibrary returns the freshly built modules: the stages as shipped,
// and the Go multi-call module, which contains every Go stage.
func builtLibrary(t testing.TB) (map[string]ModuleStage, *engine.Module) {
	t.Helper()
	dir, err := built()
	var skip errSkip
	if errors.As(err, &skip) {
		t.Skip(skip.why)
	}
	if err != nil {
		t.Fatal(err)
	}
	stages, err := Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]ModuleStage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	goMod, err := engine.ReadModuleFile(filepath.Join(dir, "kiln-stages.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return byName, goMod
}

// newEngine starts an engine whose compilation cache lives for the test.
func newEngine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.New(context.Background(), engine.Config{CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// TestGolden runs every case under ../stages/testdata/<stage>/<case>: it
// makes the tree of tree.txt, validates options.json against the stage's
// schema, runs the stage with the engine and compares the tree difference
// with expected.txt, or the error with the substring in error.txt. log.txt,
// if present, is a substring the stage log must hold. A stage with a C or
// Rust build runs each case in that build and in the Go module.
func TestGolden(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("golden trees hold files of several owners: run as root")
	}
	stages, goMod := builtLibrary(t)
	e := newEngine(t)
	modules := map[string]*engine.Module{}
	cases, err := filepath.Glob(filepath.Join(testdata, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, dir := range cases {
		name := filepath.Base(filepath.Dir(dir))
		seen[name] = true
		st, ok := stages[name]
		if !ok {
			t.Errorf("%s: no stage %s in the library", dir, name)
			continue
		}
		mod := modules[st.ModuleDigest]
		if mod == nil {
			mod = engine.NewModule(st.Module)
			modules[st.ModuleDigest] = mod
		}
		impls := []struct {
			label string
			mod   *engine.Module
		}{{strings.TrimSuffix(st.ModuleName, ".wasm"), mod}}
		if st.ModuleName != "kiln-stages.wasm" {
			impls = append(impls, struct {
				label string
				mod   *engine.Module
			}{"kiln-stages", goMod})
		}
		for _, impl := range impls {
			t.Run(name+"/"+filepath.Base(dir)+"/"+impl.label, func(t *testing.T) {
				runCase(t, e, st, impl.mod, dir)
			})
		}
	}
	for name := range stages {
		if !seen[name] {
			t.Errorf("stage %s has no golden test under %s", name, testdata)
		}
	}
}

func runCase(t *testing.T, e *engine.Engine, st ModuleStage, mod *engine.Module, dir string) {
	desc, err := os.ReadFile(filepath.Join(dir, "tree.txt"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := makeTree(tree, dir, "/ dir 0755 0:0\n"+string(desc)); err != nil {
		t.Fatal(err)
	}
	before, err := describeTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := os.ReadFile(filepath.Join(dir, "options.json"))
	if errors.Is(err, os.ErrNotExist) {
		opts = []byte("{}")
	} else if err != nil {
		t.Fatal(err)
	}
	wantErr, errCase := readOptional(t, filepath.Join(dir, "error.txt"))
	wantLog, _ := readOptional(t, filepath.Join(dir, "log.txt"))

	runErr := validate(st, opts)
	var log []byte
	if runErr == nil {
		sources := ""
		if _, err := os.Stat(filepath.Join(dir, "sources")); err == nil {
			sources, _ = filepath.Abs(filepath.Join(dir, "sources"))
		}
		id := sha256.Sum256([]byte(st.Name + "\x00" + dir))
		var res engine.Result
		res, runErr = e.Run(context.Background(), engine.Invocation{
			Name: st.Name, ID: hex.EncodeToString(id[:]), Module: mod, Options: opts,
			Tree: tree, Sources: sources, Epoch: goldenEpoch,
		})
		log = res.Log
	}
	if wantLog != "" && !bytes.Contains(log, []byte(wantLog)) {
		t.Errorf("log lacks %q:\n%s", wantLog, log)
	}
	if errCase {
		if runErr == nil {
			t.Fatalf("stage succeeded; want an error containing %q", wantErr)
		}
		if !strings.Contains(runErr.Error()+"\n"+string(log), wantErr) {
			t.Fatalf("error %q (log %q) lacks %q", runErr, log, wantErr)
		}
		return
	}
	if runErr != nil {
		t.Fatalf("stage failed: %v\nlog:\n%s", runErr, log)
	}
	after, err := describeTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	got := diffTrees(before, after)
	golden := filepath.Join(dir, "expected.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("tree difference:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}

// validate checks options against the stage's schema, as the runtime does
// before running a stage; violations are the case's error.
func validate(st ModuleStage, opts []byte) error {
	s, err := schema.Compile("kiln:stage/"+st.Name, st.Schema)
	if err != nil {
		return fmt.Errorf("compiling schema: %w", err)
	}
	vs, err := s.Validate(opts)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return nil
	}
	var msgs []string
	for _, v := range vs {
		msgs = append(msgs, v.PathString("$.options")+": "+v.Message)
	}
	return fmt.Errorf("schema: %s", strings.Join(msgs, "; "))
}

func readOptional(t *testing.T, p string) (string, bool) {
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(data), "\n"), true
}
