package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tableCommand is a WASI command with one funcref table of min elements
// (and no maximum) whose _start runs code.
func tableCommand(min uint32, code []byte) []byte {
	section := func(m []byte, id byte, payload []byte) []byte {
		return append(appendU32(append(m, id), uint32(len(payload))), payload...)
	}
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = section(m, 1, []byte{1, 0x60, 0, 0})                     // type 0: () -> ()
	m = section(m, 3, []byte{1, 0})                              // one function of type 0
	m = section(m, 4, appendU32([]byte{1, 0x70, 0x00}, min))     // one funcref table, min only
	m = section(m, 7, append([]byte{1, 6}, "_start\x00\x00"...)) // export _start = function 0
	body := append([]byte{0}, code...)
	return section(m, 10, append(appendU32([]byte{1}, uint32(len(body))), body...))
}

// TestTableGrowIsBounded: a module looping on table.grow once took
// gigabytes of host memory, beyond --stage-memory, which bounded linear
// memory only: wazero lets a table without a declared maximum grow to 2^32
// elements. kiln gives such a table its minimum as maximum, so the first
// table.grow fails (returns -1) as memory.grow does at the limit, and the
// module, which traps when its grow is refused, traps at once.
func TestTableGrowIsBounded(t *testing.T) {
	grow := tableCommand(1, []byte{
		0x03, 0x40, // loop
		0xd0, 0x70, // ref.null func
		0x41, 0x80, 0xad, 0xe2, 0x04, // i32.const 10000000
		0xfc, 0x0f, 0x00, // table.grow 0
		0x41, 0x7f, // i32.const -1
		0x47,       // i32.ne
		0x0d, 0x00, // br_if 0: grown, grow again
		0x0b,       // end loop
		0x00, 0x0b, // unreachable: refused; end
	})
	e := newEngine(t, Config{MemoryLimit: 64 << 20})
	// The timeout only keeps a regression from running on: before the
	// fix the loop grew the table towards 32 GiB.
	_, err := e.Run(t.Context(), Invocation{Name: "grow", ID: testID, Module: NewModule(grow), Tree: t.TempDir(), Timeout: time.Minute})
	var se *StageError
	if !errors.As(err, &se) || !errors.Is(err, ErrTrap) || !strings.Contains(se.Trap, "unreachable") {
		t.Fatalf("Run = %v, want the trap the module makes when table.grow is refused", err)
	}
	// boundTables' rewrite: a table without a maximum gets min as max.
	out, elems, err := boundTables(tableCommand(7, []byte{0x0b}))
	if err != nil || elems != 7 || !bytes.Contains(out, []byte{4, 5, 1, 0x70, 1, 7, 7}) {
		t.Errorf("boundTables = %x, %d, %v, want a table section of one funcref table 7..7", out, elems, err)
	}
}

// TestTablesCountAgainstTheMemoryLimit: a table's declared size is
// allocated at instantiation, so it counts against the memory limit, and no
// table may declare more than maxTableElements.
func TestTablesCountAgainstTheMemoryLimit(t *testing.T) {
	e := newEngine(t, Config{MemoryLimit: 64 << 20})
	for _, tt := range []struct {
		name  string
		elems uint32
		want  string
	}{
		{"over kiln's element limit", maxTableElements + 1, "module's tables declare 10000001 elements, over kiln's limit of 10000000"},
		// 9M elements of 8 bytes are 68 MiB, over the 64 MiB limit.
		{"over the memory limit", 9_000_000, "module needs 68 MiB of memory (tables of up to 9000000 elements included), over the limit of 64 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Run(t.Context(), Invocation{Name: "table", ID: testID, Module: NewModule(tableCommand(tt.elems, []byte{0x0b})), Tree: t.TempDir()})
			if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want ErrMemoryLimit saying %q", err, tt.want)
			}
		})
	}
	// A small table is fine.
	if _, err := e.Run(t.Context(), Invocation{Name: "table", ID: testID, Module: NewModule(tableCommand(1000, []byte{0x0b})), Tree: t.TempDir()}); err != nil {
		t.Errorf("a module with a table of 1000 elements: %v", err)
	}
}

// TestOversizedOptionsAndModules: a 256 MiB options document once cost
// gigabytes in the worker; options over MaxOptionsSize and modules over
// MaxModuleSize are refused before anything is sent to the worker.
func TestOversizedOptionsAndModules(t *testing.T) {
	e := newEngine(t, Config{})
	big := append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), MaxOptionsSize)...), `"}`...)
	_, err := e.Run(t.Context(), Invocation{Name: "noop", ID: testID, Module: guest(t), Tree: t.TempDir(), Options: json.RawMessage(big)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "options") || !strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("Run with %d bytes of options = %v, want ErrTooLarge naming the options and the limit", len(big), err)
	}
	_, err = e.Run(t.Context(), Invocation{Name: "noop", ID: testID, Module: NewModule(make([]byte, MaxModuleSize+1)), Tree: t.TempDir()})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "64 MiB") {
		t.Errorf("Run with a module over the limit = %v, want ErrTooLarge", err)
	}
	runNoop(t, e)
}

// TestWorkerProcessIsBounded: the worker process itself has an RLIMIT_DATA
// derived from the stage memory limit, so nothing a stage makes it allocate
// escapes --stage-memory by more than kiln's fixed allowance.
func TestWorkerProcessIsBounded(t *testing.T) {
	const limit = 128 << 20
	e := newEngine(t, Config{MemoryLimit: limit})
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", e.w.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	want := workerDataLimit(limit)
	if raceEnabled {
		want *= 8
	}
	var got string
	for line := range strings.Lines(string(limits)) {
		if f := strings.Fields(line); len(f) > 4 && f[0] == "Max" && f[1] == "data" {
			got = f[3]
		}
	}
	if got != strconv.FormatUint(want, 10) {
		t.Errorf("worker's Max data size = %q, want %d:\n%s", got, want, limits)
	}
	if !outOfMemory([]byte("fatal error: runtime: out of memory")) || outOfMemory([]byte("panic: nil map")) {
		t.Error("outOfMemory does not tell the Go runtime's out-of-memory death from another")
	}
}

// nestedBlocks is a command whose _start is depth nested empty blocks: a
// module of 3 bytes per level that makes wazero's compiler work for long.
func nestedBlocks(depth int) []byte {
	code := bytes.Repeat([]byte{0x02, 0x40}, depth) // block (no result)
	code = append(code, bytes.Repeat([]byte{0x0b}, depth+1)...)
	return wasmCommand([]byte{0}, code, 0)
}

// TestCompileTimeout: a 240 KB module of nested blocks once compiled for
// minutes past --stage-timeout, which starts after compilation. Compiling has
// its own limit, and the error says it was the compilation that took too
// long, and the limit. The limit is far below any compile of this module,
// so the test checks the outcome, not how long anything took.
func TestCompileTimeout(t *testing.T) {
	e := newEngine(t, Config{CacheDir: t.TempDir(), CompileTimeout: time.Millisecond})
	mod := NewModule(nestedBlocks(80_000))
	_, err := e.Run(t.Context(), Invocation{Name: "nested", ID: testID, Module: mod, Tree: t.TempDir(), Timeout: time.Hour})
	var se *StageError
	if !errors.As(err, &se) || !errors.Is(err, ErrCompileTimeout) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Run = %v, want a *StageError matching ErrCompileTimeout and context.DeadlineExceeded", err)
	}
	want := fmt.Sprintf("compilation timed out: compiling module %s took longer than the limit of 1ms", mod.Digest()[:12])
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
