package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelloStages(t *testing.T) {
	e := newEngine(t, Config{CacheDir: t.TempDir()})
	for _, lang := range []string{"go", "c", "rust"} {
		t.Run(lang, func(t *testing.T) {
			mod := hello(t, lang)
			tree := t.TempDir()
			res, err := e.Run(t.Context(), Invocation{
				Name: "org.kiln.hello", ID: testID, Module: mod, Tree: tree,
				Options: json.RawMessage(`{"greeting": "Hej \u00e5 \"du\""}`),
			})
			if err != nil {
				t.Fatalf("Run: %v\nlog:\n%s", err, res.Log)
			}
			if res.Setup <= 0 || res.Setup > res.Duration {
				t.Errorf("setup %v of duration %v: want a positive part of it", res.Setup, res.Duration)
			}
			const greeting = `Hej å "du"`
			got, err := os.ReadFile(filepath.Join(tree, "etc", "hello"))
			if err != nil {
				t.Fatal(err)
			}
			if want := greeting + " from the " + map[string]string{"go": "Go", "c": "C", "rust": "Rust"}[lang] +
				" hello stage\n"; string(got) != want {
				t.Errorf("/etc/hello = %q, want %q", got, want)
			}
			// The mode comes from the kiln_hostfs chmod call: WASI alone
			// would leave 0600.
			if fi, err := os.Stat(filepath.Join(tree, "etc", "hello")); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("/etc/hello mode = %v (%v), want 0644", fi.Mode(), err)
			}
			if target, err := os.Readlink(filepath.Join(tree, "etc", "hello-link")); err != nil || target != "hello" {
				t.Errorf("/etc/hello-link -> %q (%v), want -> hello", target, err)
			}
			if want := "wrote /etc/hello: " + greeting + "\n"; string(res.Log) != want {
				t.Errorf("log = %q, want %q", res.Log, want)
			}
		})
	}
}

func TestOutputCaptured(t *testing.T) {
	e := newEngine(t, Config{})
	tree := t.TempDir()
	var live bytes.Buffer
	res, err := e.Run(t.Context(), Invocation{
		Name: "echo", ID: testID, Module: guest(t), Tree: tree,
		Options: json.RawMessage(`{"Lines": 3}`), Log: &live,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := "out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"
	if string(res.Log) != want {
		t.Errorf("Result.Log = %q, want stdout and stderr interleaved: %q", res.Log, want)
	}
	if live.String() != want {
		t.Errorf("live log = %q, want %q", live.String(), want)
	}
	if data, err := os.ReadFile(filepath.Join(tree, "echo.txt")); err != nil || string(data) != "echoed\n" {
		t.Errorf("tree/echo.txt = %q, %v", data, err)
	}
}

func TestStageFailures(t *testing.T) {
	e := newEngine(t, Config{})
	tests := []struct {
		name      string
		stage     string
		module    *Module
		options   string
		wantErr   error
		wantExit  uint32
		wantInMsg []string
	}{
		{
			name: "non-zero exit carries stderr", stage: "fail", module: guest(t), options: `{"Code": 3}`,
			wantErr: ErrExit, wantExit: 3,
			wantInMsg: []string{"stage fail (id 0123456789ab): exit status 3", "stderr:\n    something went wrong"},
		},
		{
			name: "malformed options", stage: "echo", module: guest(t), options: `{"Lines": }`,
			wantErr: ErrExit, wantExit: 1,
			wantInMsg: []string{"echo: decoding options: invalid character '}' looking for beginning of value (at byte 11)"},
		},
		{
			name: "unknown stage in a multi-call module", stage: "nope", module: guest(t),
			wantErr: ErrExit, wantExit: 127, wantInMsg: []string{"nope: no such stage in this module"},
		},
		{
			name: "trap", stage: "trap", module: NewModule(trapWasm),
			wantErr: ErrTrap, wantInMsg: []string{"trapped:", "unreachable"},
		},
		{
			name: "not wasm", stage: "junk", module: NewModule([]byte("#!/bin/sh\necho hi\n")),
			wantErr: ErrInvalidModule, wantInMsg: []string{"invalid stage module"},
		},
		{
			name: "import from an unknown module", stage: "env", module: NewModule(importingWasm("env", "foo")),
			wantErr:   ErrInvalidModule,
			wantInMsg: []string{"module imports env.foo: a stage can import only wasi_snapshot_preview1 and kiln_hostfs"},
		},
		{
			name: "unknown host function", stage: "hostfs", module: NewModule(importingWasm("kiln_hostfs", "nosuch")),
			wantErr: ErrInvalidModule, wantInMsg: []string{"instantiating:", `"nosuch" is not exported in module "kiln_hostfs"`},
		},
		{
			name: "not a command", stage: "lib", module: NewModule(wasmCommand([]byte{0}, []byte{0x0b}, 0)[:8]),
			wantErr: ErrInvalidModule, wantInMsg: []string{"no _start function"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Run(t.Context(), Invocation{
				Name: tt.stage, ID: testID, Module: tt.module, Tree: t.TempDir(),
				Options: json.RawMessage(tt.options),
			})
			var se *StageError
			if !errors.As(err, &se) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run error = %v, want a *StageError wrapping %v", err, tt.wantErr)
			}
			if se.ExitCode != tt.wantExit {
				t.Errorf("ExitCode = %d, want %d", se.ExitCode, tt.wantExit)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
	// A failure leaves the worker usable.
	if _, err := e.Run(t.Context(), Invocation{Name: "noop", ID: testID, Module: guest(t), Tree: t.TempDir()}); err != nil {
		t.Errorf("noop after failures: %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	e := newEngine(t, Config{})
	res, err := e.Run(t.Context(), Invocation{
		Name: "env", ID: "c0ffee", Module: guest(t), Tree: t.TempDir(), Epoch: 1700000000,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := `args ["env"]
SOURCE_DATE_EPOCH=1700000000
KILN_STAGE=env
KILN_STAGE_ID=c0ffee
`
	if string(res.Log) != want {
		t.Errorf("argv and environment:\n%s\nwant exactly:\n%s", res.Log, want)
	}
}

func TestMounts(t *testing.T) {
	e := newEngine(t, Config{})
	tree, sources, build := t.TempDir(), t.TempDir(), t.TempDir()
	for dir, text := range map[string]string{sources: "from sources", build: "from build"} {
		if err := os.WriteFile(filepath.Join(dir, "input.txt"), []byte(text+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.Run(t.Context(), Invocation{
		Name: "mounts", ID: testID, Module: guest(t), Tree: tree, Sources: sources, Build: build,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, res.Log)
	}
	for _, s := range []string{"/run/kiln/sources: from sources", "/run/kiln/build: from build"} {
		if !strings.Contains(string(res.Log), s) {
			t.Errorf("log %q lacks %q", res.Log, s)
		}
	}
	for _, dir := range []string{sources, build} {
		if _, err := os.Stat(filepath.Join(dir, "written.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a read-only input was written: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(tree, "tree.txt")); err != nil {
		t.Errorf("the tree was not written: %v", err)
	}
}

func TestRunRefusesBadStages(t *testing.T) {
	e := newEngine(t, Config{})
	mod, tree := guest(t), t.TempDir()
	file := filepath.Join(tree, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stage Invocation
		want  string
	}{
		{"no name", Invocation{ID: testID, Module: mod, Tree: tree}, "stage has no name"},
		{"no module", Invocation{Name: "x", ID: testID, Tree: tree}, "no module"},
		{"id not hex", Invocation{Name: "x", ID: "xyz", Module: mod, Tree: tree}, `id "xyz" is not hex`},
		{"no id", Invocation{Name: "x", Module: mod, Tree: tree}, `id "" is not hex`},
		{"no tree", Invocation{Name: "x", ID: testID, Module: mod}, "no tree directory"},
		{"missing tree", Invocation{Name: "x", ID: testID, Module: mod, Tree: filepath.Join(tree, "nope")}, "no such file"},
		{"sources not a dir", Invocation{Name: "x", ID: testID, Module: mod, Tree: tree, Sources: file}, "is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Run(t.Context(), tt.stage)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	e := newEngine(t, Config{})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.Run(t.Context(), Invocation{Name: "noop", ID: testID, Module: guest(t), Tree: t.TempDir()})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewInsideWorkerRefused(t *testing.T) {
	t.Setenv(workerEnv, "1")
	_, err := New(context.Background(), Config{})
	if !errors.Is(err, ErrWorker) || !strings.Contains(err.Error(), "MaybeRunWorker") {
		t.Errorf("New in a worker = %v, want ErrWorker naming MaybeRunWorker", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"memory limit under a page", Config{MemoryLimit: 1000}, "must be between 64 KiB and 4 GiB"},
		{"memory limit over 4 GiB", Config{MemoryLimit: 5 << 30}, "must be between 64 KiB and 4 GiB"},
		{"cache dir under a file", Config{CacheDir: filepath.Join(fileIn(t), "cache")}, "creating compilation cache"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(t.Context(), tt.cfg)
			if err == nil {
				_ = e.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
			}
		})
	}
}

// fileIn makes a regular file in a fresh directory and returns its path.
func fileIn(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e, err := New(ctx, Config{})
	if err == nil {
		_ = e.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("New with a canceled context = %v, want context.Canceled", err)
	}
}
