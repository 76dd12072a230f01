package engine

import (
	"fmt"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// workerOverhead is what a worker may use beyond its stages' linear memory:
// the Go runtime, wazero's compiler at work on a module of up to
// MaxModuleSize bytes, the compiled modules it keeps, and a stage's options.
const workerOverhead = 1<<30 + 4*MaxModuleSize

// workerDataLimit is the worker's RLIMIT_DATA for a stage memory limit.
// Linear memory counts twice: when it grows, the old array and the new one
// coexist until the copy is done and the collector runs.
func workerDataLimit(memoryLimit uint64) uint64 {
	return 2*memoryLimit + workerOverhead
}

// limitWorker bounds the worker process itself, so that whatever a stage
// makes the worker allocate (wazero's structures for a hostile module, the
// tables, a guest's memory) is bounded even where the engine's own checks
// would miss it: RLIMIT_DATA caps the process's private writable mappings,
// which is where Go's heap and every anonymous mmap live. Past it an
// allocation fails and the Go runtime ends the worker with "out of memory",
// which the parent reports as ErrMemoryLimit. The Go collector is told a
// soft limit below it, so that it works harder before the hard one is hit.
func limitWorker(memoryLimit uint64) error {
	lim := workerDataLimit(memoryLimit)
	if raceEnabled {
		// The race detector's shadow memory counts as data too, and is
		// several times the heap.
		lim *= 8
	}
	if err := unix.Setrlimit(unix.RLIMIT_DATA, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
		return fmt.Errorf("setting the worker's RLIMIT_DATA to %d MiB: %w", lim>>20, err)
	}
	debug.SetMemoryLimit(int64(lim - lim/8))
	return nil
}
