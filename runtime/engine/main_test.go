package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestMain makes the test binary a stage worker when the engine starts it as
// one; the engine runs stages in a copy of its own executable.
func TestMain(m *testing.M) {
	// TestForgottenHook runs this binary as a program that forgot the
	// call, in a process of its own. Its would-be worker gets an empty
	// environment, so it looks for the variable in its parent's.
	if os.Getenv("KILN_ENGINE_TEST_NO_HOOK") == "" && !parentForgotHook() {
		MaybeRunWorker()
	}
	dir, err := os.MkdirTemp("", "kiln-engine-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// parentForgotHook tells a would-be worker started by TestHelperNoHook.
func parentForgotHook() bool {
	if os.Args[len(os.Args)-1] != workerArg {
		return false
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", os.Getppid()))
	return err == nil && slices.ContainsFunc(bytes.Split(env, []byte{0}), func(v []byte) bool {
		return string(v) == "KILN_ENGINE_TEST_NO_HOOK=1"
	})
}

// buildDir holds the wasm modules the tests build, shared by all tests.
var buildDir string

// repoRoot is where go.mod is, two levels up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var guestOnce = sync.OnceValues(func() ([]byte, error) {
	out := filepath.Join(buildDir, "guest.wasm")
	if wasm, err := os.ReadFile(out); err == nil {
		return wasm, nil // built by the test process that started this one
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the test guest: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
})

// guest is the multi-call Go test module (testdata/guest); the stage name
// picks its behaviour.
func guest(t testing.TB) *Module {
	t.Helper()
	wasm, err := guestOnce()
	if err != nil {
		t.Fatal(err)
	}
	return NewModule(wasm)
}

var helloMu sync.Mutex

// toolchains caches toolchain's answers (under helloMu): the check builds a
// one-line program.
var toolchains = map[string]struct{ path, skip string }{}

// toolchain is the wasm32-wasi compiler for lang ("c" or "rust") that
// stages-wasm/build.sh --check finds; without one the test skips with its
// reason, so the tests skip exactly when make leaves the C and Rust stages
// out (kiln needs Go alone). The caller holds helloMu.
func toolchain(t testing.TB, lang string) string {
	t.Helper()
	if tc, ok := toolchains[lang]; ok {
		if tc.skip != "" {
			t.Skip(tc.skip)
		}
		return tc.path
	}
	cmd := exec.Command(filepath.Join(repoRoot(t), "stages-wasm", "build.sh"), "--check", lang)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == 3:
		skip := fmt.Sprintf("no %s toolchain for wasm32-wasi: %s", lang, strings.TrimSpace(stderr.String()))
		toolchains[lang] = struct{ path, skip string }{skip: skip}
		t.Skip(skip)
	case err != nil:
		t.Fatalf("stages-wasm/build.sh --check %s: %v\n%s", lang, err, stderr.Bytes())
	}
	path := strings.TrimSpace(string(out))
	toolchains[lang] = struct{ path, skip string }{path: path}
	return path
}

// hello builds the hello stage for lang with stages-wasm/build.sh. A missing
// C or Rust toolchain skips, naming the Debian packages that provide it.
func hello(t testing.TB, lang string) *Module {
	t.Helper()
	helloMu.Lock()
	defer helloMu.Unlock()
	out := filepath.Join(buildDir, "hello-"+lang+".wasm")
	if _, err := os.Stat(out); err != nil {
		if lang != "go" {
			toolchain(t, lang)
		}
		cmd := exec.Command(filepath.Join(repoRoot(t), "stages-wasm", "build.sh"), buildDir, lang)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("stages-wasm/build.sh %s: %v\n%s", lang, err, msg)
		}
	}
	m, err := ReadModuleFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newEngine returns an engine closed at the end of the test. Unless cfg
// says otherwise, all tests share one compilation cache: compiling the Go
// guest takes seconds under the race detector, and every new worker (each
// engine, each kill) would pay it again.
func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(buildDir, "cache")
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// testID is a stage id for tests that do not care which.
const testID = "0123456789abcdef"

// wasmCommand assembles a minimal WASI command by hand: an exported _start
// with the given locals declaration and code (ending in 0x0b), and, if
// memPages > 0, an exported memory of that many pages. It makes guests that
// no compiler would: traps, loops without calls, huge memories.
func wasmCommand(locals, code []byte, memPages uint32) []byte {
	section := func(m []byte, id byte, payload []byte) []byte {
		return append(appendU32(append(m, id), uint32(len(payload))), payload...)
	}
	name := func(b []byte, s string) []byte { return append(appendU32(b, uint32(len(s))), s...) }

	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = section(m, 1, []byte{1, 0x60, 0, 0}) // one type: () -> ()
	m = section(m, 3, []byte{1, 0})          // one function of type 0
	exports := []byte{1}
	exports = append(name(exports, "_start"), 0, 0)
	if memPages > 0 {
		m = section(m, 5, appendU32([]byte{1, 0}, memPages)) // one memory, min only
		exports[0] = 2
		exports = append(name(exports, "memory"), 2, 0)
	}
	m = section(m, 7, exports)
	body := append(append([]byte{}, locals...), code...)
	m = section(m, 10, append(appendU32([]byte{1}, uint32(len(body))), body...))
	return m
}

// importingWasm is a command that imports module.name as a () -> ()
// function and never calls it.
func importingWasm(module, name string) []byte {
	imp := []byte{1, byte(len(module))}
	imp = append(imp, module...)
	imp = append(append(imp, byte(len(name))), name...)
	imp = append(imp, 0, 0) // a function of type 0
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // type 0: () -> ()
		2, byte(len(imp))}
	m = append(m, imp...)
	return append(m,
		3, 2, 1, 0, // one function of type 0
		7, 10, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 1, // export _start = function 1
		10, 4, 1, 2, 0, 0x0b) // its body: nothing
}

var (
	// trapWasm executes `unreachable`.
	trapWasm = wasmCommand([]byte{0}, []byte{0x00, 0x0b}, 0)
	// loopWasm is `loop br 0 end`: it spins forever without a call, so
	// nothing inside the guest ever yields to the host.
	loopWasm = wasmCommand([]byte{0}, []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}, 0)
)

// countWasm counts an i64 down from n to zero: a CPU-bound guest of
// adjustable length for the benchmarks.
func countWasm(n int64) []byte {
	sleb := func(b []byte, v int64) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	code := sleb([]byte{0x42}, n)   // i64.const n
	code = append(code, 0x21, 0x00, // local.set 0
		0x03, 0x40, // loop
		0x20, 0x00, 0x42, 0x01, 0x7d, // local.get 0; i64.const 1; i64.sub
		0x22, 0x00, // local.tee 0
		0x42, 0x00, 0x52, // i64.const 0; i64.ne
		0x0d, 0x00, // br_if 0
		0x0b, 0x0b) // end loop; end func
	return wasmCommand([]byte{1, 1, 0x7e}, code, 0) // one i64 local
}
