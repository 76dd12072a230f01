// Package engine runs kiln's build stages: WASI preview1 command modules
// executed by wazero against a directory tree, as docs/stage-abi.md
// specifies. [Engine.Run] mounts the [Invocation]'s tree read-write at "/" and its
// inputs read-only under /run/kiln/ (all through hostfs, which confines every
// path to its root), feeds the options JSON on stdin, freezes the wall clock
// at SOURCE_DATE_EPOCH, seeds the guest's randomness from the stage id,
// passes no host environment, caps memory, and returns the stage's
// interleaved stdout and stderr as its log; any failure is a *[StageError]
// whose Err is a sentinel ([ErrExit], [ErrTrap], [ErrMemoryLimit],
// [ErrTimeout], [ErrCompileTimeout], [ErrInvalidModule]) or the caller's
// context error. Stage output is cleaned of terminal control sequences and
// bounded per build. Stages
// run in a worker process, a re-executed copy of the calling binary that
// keeps one wazero runtime and the compiled modules warm, so a stage costs a
// few milliseconds; on timeout or cancellation the engine kills the worker,
// which stops even a guest spinning without system calls, and starts a
// fresh one for the next stage. Every binary that creates an Engine must
// therefore call [MaybeRunWorker] first in main (tests: in TestMain). The
// worker runs confined: an empty environment, no_new_privs, its own network
// namespace, the few capabilities hostfs needs, a seccomp filter, and an
// RLIMIT_DATA derived from the memory limit (docs/stage-abi.md).
package engine
