package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// runNoop checks that an engine still runs stages after a kill.
func runNoop(t *testing.T, e *Engine) {
	t.Helper()
	if _, err := e.Run(t.Context(), Invocation{Name: "noop", ID: testID, Module: guest(t), Tree: t.TempDir()}); err != nil {
		t.Errorf("noop after the kill: %v", err)
	}
}

func TestTimeoutKillsASpinningGuest(t *testing.T) {
	e := newEngine(t, Config{})
	_, err := e.Run(t.Context(), Invocation{
		Name: "loop", ID: testID, Module: NewModule(loopWasm), Tree: t.TempDir(),
		Timeout: 100 * time.Millisecond,
	})
	var se *StageError
	if !errors.As(err, &se) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want a *StageError matching ErrTimeout and context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "stage loop (id 0123456789ab): timed out after 100ms") {
		t.Errorf("error %q does not say which stage timed out after how long", err)
	}
	runNoop(t, e)
}

// TestStartedAfterCompile checks the order the stage timeout relies on:
// the worker reports the stage started (and the timeout starts counting)
// only once the module is compiled, and before the guest writes anything.
// A compile of a large module takes a second or more, which is kiln's cost,
// not the stage's.
func TestStartedAfterCompile(t *testing.T) {
	ctx := context.Background()
	r, err := newRunner(ctx, runnerConfig{memoryLimit: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close(ctx)
	m := guest(t)
	var events []string
	out := writerFunc(func(p []byte) (int, error) { events = append(events, "output"); return len(p), nil })
	o := r.run(ctx, &stageRequest{Name: "echo", ID: testID, Digest: m.digest, Wasm: m.wasm,
		Options: []byte(`{"Lines": 1}`), Tree: t.TempDir()}, out, out, func() {
		if _, ok := r.mods[m.digest]; !ok {
			t.Error("started reported before the module was compiled")
		}
		events = append(events, "started")
	})
	if o.ExitCode != 0 || o.Err != "" || o.Trap != "" {
		t.Fatalf("echo: %+v", o)
	}
	if len(events) < 2 || events[0] != "started" || slices.Index(events[1:], "started") >= 0 {
		t.Errorf("events %v: want started once, before any output", events)
	}
}

// cancelOnWrite cancels a context at the first output, which proves that the
// stage is running by the time the cancellation happens.
type cancelOnWrite struct {
	once   sync.Once
	cancel context.CancelFunc
	buf    bytes.Buffer
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.once.Do(c.cancel)
	return c.buf.Write(p)
}

func TestCancelKillsARunningGuest(t *testing.T) {
	e := newEngine(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	live := &cancelOnWrite{cancel: cancel}
	res, err := e.Run(ctx, Invocation{Name: "spin", ID: testID, Module: guest(t), Tree: t.TempDir(), Log: live})
	var se *StageError
	if !errors.As(err, &se) || !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Run = %v, want a *StageError matching context.Canceled only", err)
	}
	if string(res.Log) != "spinning\n" {
		t.Errorf("log of the killed stage = %q, want what it printed before", res.Log)
	}
	runNoop(t, e)
}

func TestCanceledBeforeStart(t *testing.T) {
	e := newEngine(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.Run(ctx, Invocation{Name: "noop", ID: testID, Module: guest(t), Tree: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a canceled context = %v, want context.Canceled", err)
	}
	runNoop(t, e)
}

func TestMemoryLimit(t *testing.T) {
	const limit = 64 << 20
	e := newEngine(t, Config{MemoryLimit: limit})
	tests := []struct {
		name    string
		stage   string
		module  *Module
		options string
		want    string
	}{
		{
			// Go's runtime exits 2 with "out of memory" when refused.
			name: "go guest grows past the limit", stage: "alloc", module: guest(t), options: `{"ChunkMiB": 8}`,
			want: "memory limit exceeded: the limit is 64 MiB (exit status 2)",
		},
		{
			name: "module starts above the limit", stage: "big", module: NewModule(wasmCommand([]byte{0}, []byte{0x0b}, 2048)),
			want: "memory limit exceeded: module needs 128 MiB of memory to start, over the limit of 64 MiB",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Run(t.Context(), Invocation{
				Name: tt.stage, ID: testID, Module: tt.module, Tree: t.TempDir(),
				Options: json.RawMessage(tt.options),
			})
			var se *StageError
			if !errors.As(err, &se) || !errors.Is(err, ErrMemoryLimit) {
				t.Fatalf("Run = %v, want a *StageError matching ErrMemoryLimit", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	// Under the limit the same guest is fine: a module of 1 MiB.
	if _, err := e.Run(t.Context(), Invocation{
		Name: "small", ID: testID, Module: NewModule(wasmCommand([]byte{0}, []byte{0x0b}, 16)), Tree: t.TempDir(),
	}); err != nil {
		t.Errorf("a module within the limit: %v", err)
	}
}
