package engine

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// wasmPage is the WebAssembly page size; memory grows in whole pages.
const wasmPage = 64 << 10

// limitAllocator backs a stage's linear memory and enforces the memory limit
// itself, rather than through wazero's RuntimeConfig.WithMemoryLimitPages,
// so that the engine can tell afterwards whether a failed stage had been
// refused memory. wazero refuses a memory.grow beyond a module's maximum
// before asking the allocator, silently; a refusal here is recorded. The
// guest sees the same thing either way: memory.grow returns -1.
type limitAllocator struct {
	limit   uint64
	refused atomic.Bool
}

// Allocate implements experimental.MemoryAllocator.
func (a *limitAllocator) Allocate(capacity, _ uint64) experimental.LinearMemory {
	return &limitedMemory{alloc: a, buf: make([]byte, 0, min(capacity, a.limit))}
}

type limitedMemory struct {
	alloc *limitAllocator
	buf   []byte
	sized bool // the initial size has been set
}

// Reallocate implements experimental.LinearMemory. Returning nil makes the
// guest's memory.grow fail. The first call sizes the initial memory; the
// engine has already checked that the module's minimum fits the limit, so
// that call is never refused (wazero would panic on nil there).
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.alloc.limit && m.sized {
		m.alloc.refused.Store(true)
		return nil
	}
	m.sized = true
	if size <= uint64(cap(m.buf)) {
		// The bytes past len were zeroed when the array was made and
		// never exposed, since linear memory never shrinks.
		m.buf = m.buf[:size]
		return m.buf
	}
	// Grow geometrically, as append would, but never past the limit.
	newCap := min(max(size, 2*uint64(cap(m.buf))), max(size, m.alloc.limit))
	buf := make([]byte, size, newCap)
	copy(buf, m.buf)
	m.buf = buf
	return buf
}

// Free implements experimental.LinearMemory.
func (m *limitedMemory) Free() { m.buf = nil }
