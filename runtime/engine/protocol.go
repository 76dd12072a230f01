package engine

// The parent and its worker speak gob over the worker's stdin and stdout:
//
//	parent -> worker: workerHello, then one stageRequest per stage
//	worker -> parent: workerReady, then per stage any number of
//	                  workerReply{Stream, Data} and one workerReply{Done}
//
// gob streams are self-delimiting, so there is no extra framing. Closing the
// worker's stdin, or the parent dying, ends the worker at once.

const (
	// workerArg is the last argument of a worker process.
	workerArg = "__kiln-stage-worker"
	// workerEnv is set to "1" in a worker's environment. MaybeRunWorker
	// wants it as well as workerArg, so no command line alone makes a
	// worker; New refuses to run where it is set, so a binary that forgot
	// to call MaybeRunWorker fails with a clear error instead of
	// re-executing itself forever.
	workerEnv = "KILN_STAGE_WORKER"
	// workerMagic opens the handshake, so that a binary answering with
	// something else is recognised as not being a worker.
	workerMagic = "kiln-stage-worker/1"
)

type workerHello struct {
	CacheDir    string
	MemoryLimit uint64
}

type workerReady struct {
	Magic string
	Err   string // the worker could not set up its runtime
}

// stageRequest is a Stage as the worker needs it.
type stageRequest struct {
	Name, ID string
	Digest   string
	Wasm     []byte // nil when this worker already holds Digest compiled
	Options  []byte
	Tree     string
	// TreeState is Invocation.TreeState.
	TreeState string
	Sources   string
	Build     string
	Epoch     int64
}

const (
	streamStdout = 1
	streamStderr = 2
)

type workerReply struct {
	Stream int // streamStdout or streamStderr, with Data
	Data   []byte
	Done   *outcome // the last reply for a request
	// Started: the module is compiled and the guest starts now.
	Started bool
}

// failKind classifies errors that happen before the guest runs.
type failKind int

const (
	failNone    failKind = iota
	failSetup            // mounts and other host-side setup
	failModule           // the module does not compile or is no command
	failMemory           // the module's initial memory exceeds the limit
	failUnknown          // the worker does not hold the module (protocol)
)

// outcome is how one stage ended, as the worker saw it.
type outcome struct {
	Loaded   bool   // the worker holds the module compiled now
	ExitCode uint32 // the guest's exit status
	Trap     string // non-empty when the guest trapped
	Refused  bool   // the memory limit refused a grow
	Fail     failKind
	Err      string // with Fail
	// Warnings are for the user: a damaged cache entry compiled again.
	Warnings []string
}
