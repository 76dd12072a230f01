package hostfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kilnbuild/kiln/hostfs"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Guests are Go wasip1 programs under testdata/, built once per test binary
// and compiled once into one shared wazero runtime, which also carries one
// kiln_hostfs instance for every test: exactly how the runtime uses hostfs,
// one host module serving many stages with different trees.

var (
	guestDir string // holds the built .wasm files; removed by TestMain

	rtOnce sync.Once
	rt     wazero.Runtime
	rtErr  error

	guestsMu sync.Mutex
	guests   = map[string]*guestBuild{}
)

type guestBuild struct {
	once sync.Once
	mod  wazero.CompiledModule
	err  error
	skip string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hostfs-guests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guestDir = dir
	code := m.Run()
	if rt != nil {
		_ = rt.Close(context.Background())
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func sharedRuntime(t *testing.T) wazero.Runtime {
	t.Helper()
	rtOnce.Do(func() {
		ctx := context.Background()
		rt = wazero.NewRuntime(ctx)
		if _, rtErr = wasi_snapshot_preview1.Instantiate(ctx, rt); rtErr != nil {
			return
		}
		_, rtErr = hostfs.Instantiate(ctx, rt)
	})
	if rtErr != nil {
		t.Fatal(rtErr)
	}
	return rt
}

// goTool finds the go command: the one running `go test` is on PATH.
func goTool() (string, error) {
	return exec.LookPath("go")
}

// guest builds testdata/<name> for wasip1 and compiles it, once.
func guest(t *testing.T, name string) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	r := sharedRuntime(t)
	guestsMu.Lock()
	g, ok := guests[name]
	if !ok {
		g = &guestBuild{}
		guests[name] = g
	}
	guestsMu.Unlock()
	g.once.Do(func() {
		gotool, err := goTool()
		if err != nil {
			g.skip = "no go toolchain to build the wasip1 guest: " + err.Error()
			return
		}
		out := filepath.Join(guestDir, name+".wasm")
		cmd := exec.Command(gotool, "build", "-o", out, "./testdata/"+name)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			g.err = fmt.Errorf("build guest %s: %w\n%s", name, err, msg)
			return
		}
		bin, err := os.ReadFile(out)
		if err != nil {
			g.err = err
			return
		}
		g.mod, g.err = r.CompileModule(context.Background(), bin)
	})
	if g.skip != "" {
		t.Skip(g.skip)
	}
	if g.err != nil {
		t.Fatal(g.err)
	}
	return r, g.mod
}

// runGuest runs mod with args over mounts and returns its stdout, stderr and
// exit code.
func runGuest(t *testing.T, r wazero.Runtime, mod wazero.CompiledModule, mounts []hostfs.Mount, args ...string) (string, string, uint32) {
	t.Helper()
	return runGuestContext(t, hostfs.WithMounts(t.Context(), mounts), r, mod, mounts, args...)
}

// runGuestContext is runGuest with the context of the guest call given, so a
// test can leave the mount table out of it.
func runGuestContext(t *testing.T, ctx context.Context, r wazero.Runtime, mod wazero.CompiledModule, mounts []hostfs.Mount, args ...string) (string, string, uint32) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances at once
		WithArgs(args...).
		WithStdout(&stdout).
		WithStderr(&stderr).
		WithFSConfig(hostfs.FSConfig(mounts))
	m, err := r.InstantiateModule(ctx, mod, cfg)
	code := uint32(0)
	if m != nil {
		_ = m.Close(ctx)
	}
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// openRoot opens dir with resolver r, closing it when the test ends.
func openRoot(t *testing.T, dir string, r hostfs.Resolver) *hostfs.Root {
	t.Helper()
	root, err := hostfs.OpenRoot(dir, hostfs.WithResolver(r))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := root.Close(); err != nil {
			t.Error(err)
		}
	})
	return root
}

var resolvers = []hostfs.Resolver{hostfs.ResolveOpenat2, hostfs.ResolveUserspace}
