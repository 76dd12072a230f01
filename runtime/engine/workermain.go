package engine

import (
	"bufio"
	"context"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// MaybeRunWorker turns this process into a stage worker if it was started as
// one, and otherwise returns at once. Every program that creates an Engine
// must call it first thing in main, and every test binary that does so from
// TestMain, because the engine runs stages in a copy of its own executable
// (see docs/stage-abi.md). In a worker it never returns.
func MaybeRunWorker() {
	if len(os.Args) < 2 || os.Args[len(os.Args)-1] != workerArg {
		return
	}
	switch os.Getenv(workerEnv) {
	case workerPhaseConfine:
		confineAndExec()
	case workerPhaseServe:
		if err := installSeccomp(); err != nil {
			fmt.Fprintf(os.Stderr, "kiln stage worker: %v\n", err)
			os.Exit(1)
		}
	default:
		return
	}
	// The protocol gets stdout to itself: fd 1 is moved to a private
	// descriptor and stderr takes its place, so a stray print anywhere in
	// the process cannot corrupt the stream to the parent.
	proto, err := unix.FcntlInt(uintptr(unix.Stdout), unix.F_DUPFD_CLOEXEC, 3)
	if err == nil {
		err = unix.Dup3(unix.Stderr, unix.Stdout, 0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kiln stage worker: taking stdout: %v\n", err)
		os.Exit(1)
	}
	os.Stdout = os.Stderr
	if err := serveWorker(os.Stdin, os.NewFile(uintptr(proto), "kiln-stage-protocol")); err != nil {
		fmt.Fprintf(os.Stderr, "kiln stage worker: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveWorker answers the parent's requests until it closes the pipe.
func serveWorker(in io.Reader, out io.Writer) error {
	ctx := context.Background()
	dec := gob.NewDecoder(bufio.NewReader(in))
	w := &replyWriter{enc: gob.NewEncoder(out)}

	var hello workerHello
	if err := dec.Decode(&hello); err != nil {
		return fmt.Errorf("reading handshake: %w", err)
	}
	err := limitWorker(hello.MemoryLimit)
	var r *runner
	if err == nil {
		r, err = newRunner(ctx, runnerConfig{cacheDir: hello.CacheDir, memoryLimit: hello.MemoryLimit})
	}
	ready := workerReady{Magic: workerMagic}
	if err != nil {
		ready.Err = err.Error()
	}
	if err := w.encode(&ready); err != nil || r == nil {
		return err
	}
	defer r.close(ctx)

	// Requests are read on their own goroutine so that end of input is
	// seen even while a guest is running: it means the parent closed the
	// engine or died, and a guest spinning in a loop must not outlive it.
	// Pdeathsig covers the same case from the kernel's side.
	reqs := make(chan *stageRequest)
	go func() {
		for {
			req := new(stageRequest)
			if err := dec.Decode(req); err != nil {
				if err != io.EOF {
					fmt.Fprintf(os.Stderr, "kiln stage worker: reading request: %v\n", err)
				}
				os.Exit(0)
			}
			reqs <- req
		}
	}()
	for req := range reqs {
		started := func() { _ = w.encode(&workerReply{Started: true}) }
		o := r.run(ctx, req, w.stream(streamStdout), w.stream(streamStderr), started)
		if err := w.encode(&workerReply{Done: &o}); err != nil {
			return err
		}
	}
	return nil
}

// replyWriter serialises replies onto the pipe to the parent.
type replyWriter struct {
	mu  sync.Mutex
	enc *gob.Encoder
}

func (w *replyWriter) encode(v any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(v)
}

// stream is an io.Writer for a guest's stdout or stderr that forwards each
// write to the parent as it happens, so the parent can show progress live.
func (w *replyWriter) stream(s int) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if err := w.encode(&workerReply{Stream: s, Data: p}); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
