package engine

import (
	"context"
	"encoding/gob"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// worker is the parent's handle on one worker process.
type worker struct {
	cmd    *exec.Cmd
	enc    *gob.Encoder // to the worker's stdin
	dec    *gob.Decoder // from the worker's stdout
	toW    *os.File
	fromW  *os.File
	have   map[string]bool // digests the worker holds compiled
	stderr *lockedLog      // the worker's own stderr: crashes, not stages

	exited  chan struct{} // closed once the process is reaped
	waitErr error         // set before exited is closed
}

// startWorker starts a copy of this executable as a worker and completes the
// handshake. ctx bounds the start only; the worker outlives it.
func startWorker(ctx context.Context, hello workerHello) (*worker, error) {
	exe, err := selfExe()
	if err != nil {
		return nil, fmt.Errorf("%w: finding own executable: %w", ErrWorker, err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWorker, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = inR.Close(), inW.Close()
		return nil, fmt.Errorf("%w: %w", ErrWorker, err)
	}
	cmd := exec.Command(exe, workerArgs()...)
	// Nothing of kiln's environment: the worker needs only its phase.
	cmd.Env = []string{workerEnv + "=" + workerPhaseConfine}
	cmd.Stdin, cmd.Stdout = inR, outW
	w := &worker{
		cmd: cmd, toW: inW, fromW: outR,
		enc: gob.NewEncoder(inW), dec: gob.NewDecoder(outR),
		have:   map[string]bool{},
		stderr: &lockedLog{log: newLogBuffer(8 << 10)},
		exited: make(chan struct{}),
	}
	cmd.Stderr = w.stderr
	// Its own process group keeps a terminal's Ctrl-C away from the
	// worker: the parent decides when it dies. Pdeathsig kills it with
	// the parent, even in the middle of a guest's loop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = w.start()
	// The child holds its own copies of these ends; ours must go, or the
	// worker's death would never show as EOF.
	_, _ = inR.Close(), outW.Close()
	if err != nil {
		_, _ = inW.Close(), outR.Close()
		return nil, fmt.Errorf("%w: starting %s: %w", ErrWorker, exe, err)
	}

	stopKill := context.AfterFunc(ctx, w.kill)
	var ready workerReady
	if err = w.enc.Encode(&hello); err == nil {
		err = w.dec.Decode(&ready)
	}
	if err == nil && ready.Magic != workerMagic {
		err = fmt.Errorf("unexpected handshake %q", ready.Magic)
	}
	// A kill racing a successful handshake still leaves a dead worker.
	killed := !stopKill()
	if err != nil || ready.Err != "" || killed {
		w.stop()
		if killed {
			return nil, fmt.Errorf("starting stage worker: %w", context.Cause(ctx))
		}
		if ready.Err != "" {
			return nil, fmt.Errorf("%w: %s", ErrWorker, ready.Err)
		}
		msg := w.stderr.Bytes()
		if len(msg) > 512 {
			msg = append(msg[:512:512], "..."...)
		}
		return nil, fmt.Errorf("%w: %s did not answer as a stage worker (%v); its main must call engine.MaybeRunWorker first; stderr: %q",
			ErrWorker, exe, err, msg)
	}
	return w, nil
}

// selfExe is the binary a worker runs: this one. /proc/self/exe still opens
// it after the file was replaced or deleted, as when kiln is upgraded during
// a long build; os.Executable would name the new binary or nothing.
func selfExe() (string, error) {
	const proc = "/proc/self/exe"
	if _, err := os.Stat(proc); err == nil {
		return proc, nil
	}
	return os.Executable()
}

// workerArgs are the worker's arguments. In a test binary they come after
// flags that run no tests, so that a test package whose TestMain lacks
// MaybeRunWorker fails the handshake at once instead of running its whole
// suite in the would-be worker first. The flag package stops at the first
// non-flag argument, so workerArg must come last.
func workerArgs() []string {
	if flag.Lookup("test.run") != nil {
		return []string{"-test.run=^$", "-test.bench=^$", workerArg}
	}
	return []string{workerArg}
}

// start forks the worker from a goroutine locked to its OS thread, and keeps
// that thread until the worker is reaped: Pdeathsig fires when the forking
// thread exits, not the process, and Go retires the thread of any goroutine
// that exits while locked to it.
func (w *worker) start() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := w.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		w.waitErr = w.cmd.Wait()
		close(w.exited)
	}()
	return <-started
}

// kill ends the worker at once. Os.Process.Kill signals through a pidfd, so
// it cannot hit a recycled pid; the worker starts no processes of its own,
// so its group holds only itself.
func (w *worker) kill() {
	_ = w.cmd.Process.Kill()
}

// stop kills the worker, reaps it and releases the pipes. It is the only
// way a worker ends, so that nothing outlives the Engine.
func (w *worker) stop() {
	w.kill()
	<-w.exited
	// Closed only now: the pipes are ours, and a reader may still be
	// draining replies the worker sent before it died.
	_, _ = w.toW.Close(), w.fromW.Close()
}

func (w *worker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// run sends one stage and relays its output to sink until its outcome
// arrives; started is called when the worker has compiled the module and
// starts the guest. It returns an error only when the pipe breaks: the worker died
// or was killed.
func (w *worker) run(req *stageRequest, sink func(stream int, p []byte), started func()) (outcome, error) {
	if w.have[req.Digest] {
		req.Wasm = nil
	}
	if err := w.enc.Encode(req); err != nil {
		return outcome{}, fmt.Errorf("sending stage: %w", err)
	}
	for {
		var rep workerReply
		if err := w.dec.Decode(&rep); err != nil {
			return outcome{}, fmt.Errorf("reading from worker: %w", err)
		}
		if rep.Done != nil {
			w.have[req.Digest] = rep.Done.Loaded
			return *rep.Done, nil
		}
		if rep.Started {
			started()
			continue
		}
		sink(rep.Stream, rep.Data)
	}
}

// lockedLog is a logBuffer for exec's stderr copier goroutine.
type lockedLog struct {
	mu  sync.Mutex
	log *logBuffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log.Write(p)
}

func (l *lockedLog) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log.Bytes()
}
