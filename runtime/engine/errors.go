package engine

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Sentinels for the outcomes a caller branches on. A failed stage comes back
// as a *StageError whose Err is one of these (or a context error), so
// errors.Is works on the value Run returns.
var (
	// ErrExit: the stage exited with a non-zero status.
	ErrExit = errors.New("non-zero exit status")
	// ErrTrap: the stage trapped (unreachable, out-of-bounds access, stack
	// overflow, ...), which a Go or C program cannot do on purpose.
	ErrTrap = errors.New("trapped")
	// ErrMemoryLimit: the stage failed after the memory limit refused it
	// more memory, or it declares more initial memory than the limit.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrTimeout: the stage ran longer than Stage.Timeout and was killed.
	// Errors carrying it also match context.DeadlineExceeded.
	ErrTimeout = errors.New("timed out")
	// ErrCompileTimeout: compiling the stage's module took longer than
	// Config.CompileTimeout, and the worker was killed. Errors carrying it
	// also match context.DeadlineExceeded.
	ErrCompileTimeout = errors.New("compilation timed out")
	// ErrInvalidModule: the module does not compile, is not a WASI
	// command (no _start export), or imports what kiln does not provide.
	ErrInvalidModule = errors.New("invalid stage module")
	// ErrWorker: the worker process running stages died or broke the
	// protocol. The engine starts a fresh worker for the next stage.
	ErrWorker = errors.New("stage worker failed")
	// ErrClosed: the Engine was closed.
	ErrClosed = errors.New("engine closed")
)

// StageError is how a stage failure is reported: the stage ran (or was
// killed while running) and did not succeed. Errors before the stage could
// start, such as a missing tree directory, are plain wrapped errors.
type StageError struct {
	Stage string // the stage's name
	ID    string // the stage's id
	// Err is why: ErrExit, ErrTrap, ErrMemoryLimit, ErrTimeout (joined
	// with context.DeadlineExceeded), ErrInvalidModule, or the caller's
	// context error on cancellation.
	Err error
	// ExitCode is the guest's exit status when it exited, else 0.
	ExitCode uint32
	// Trap is wazero's description of the trap, with the wasm stack trace.
	Trap string
	// Stderr is what the stage wrote to stderr, its first and last 2 KiB
	// when longer: the most useful part of its log for a failure.
	Stderr []byte
}

// Error gives the stage, the cause and the end of stderr, indented, so that
// a failed build shows why without opening the log.
func (e *StageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stage %s", e.Stage)
	if e.ID != "" {
		fmt.Fprintf(&b, " (id %s)", shortID(e.ID))
	}
	b.WriteString(": ")
	switch {
	case errors.Is(e.Err, ErrExit):
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	case errors.Is(e.Err, ErrTrap):
		b.WriteString("trapped: ")
		b.WriteString(e.Trap)
	default:
		b.WriteString(e.Err.Error())
		if e.ExitCode != 0 {
			fmt.Fprintf(&b, " (exit status %d)", e.ExitCode)
		}
		if e.Trap != "" {
			// A Rust guest aborts with a trap when an allocation fails.
			first, _, _ := strings.Cut(e.Trap, "\n")
			fmt.Fprintf(&b, " (trapped: %s)", first)
		}
	}
	if s := bytes.TrimSpace(e.Stderr); len(s) > 0 {
		b.WriteString("; stderr:")
		for line := range strings.Lines(string(s)) {
			b.WriteString("\n    ")
			b.WriteString(strings.TrimRight(line, "\n"))
		}
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrTrap) and friends work.
func (e *StageError) Unwrap() error { return e.Err }

// shortID keeps error messages readable: 12 hex digits identify a stage in a
// build as well as 64 do.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
