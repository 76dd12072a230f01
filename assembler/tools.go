package assembler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// scratchDir makes a directory inside the output directory for
// intermediate files. It lives in the output, not in the system's temp
// directory, so that nothing an assembler writes leaves the store and big
// intermediates land on the store's filesystem. The returned func removes
// it; assemblers call it before returning so it is never committed.
func scratchDir(out string) (string, func(), error) {
	dir, err := os.MkdirTemp(out, ".scratch-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { fsmeta.RemoveAll(dir) }, nil
}

// guardOutput prepares an assembler's output directory: the returned func,
// deferred with the assembler's error, removes on failure whatever the
// assembler added to dir, so a failed, cancelled or full-disk run leaves no
// half-written image that a caller could take for output.
func guardOutput(assembler, dir string) (func(*error), error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: output directory: %w", assembler, err)
	}
	had := make(map[string]bool, len(entries))
	for _, e := range entries {
		had[e.Name()] = true
	}
	return func(err *error) {
		if *err == nil {
			return
		}
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			return
		}
		for _, e := range entries {
			if !had[e.Name()] {
				_ = fsmeta.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}, nil
}

// hostErrnos are what a tool says about the host, not about its input: the
// output's filesystem is full, read-only or failing. A tool's stderr holds
// them as strerror's words; kiln wraps the errno, so that callers tell a
// full disk from a bad manifest (and so that the error is not
// ErrFailed, which blames the input).
var hostErrnos = []unix.Errno{unix.ENOSPC, unix.EDQUOT, unix.EROFS, unix.EIO}

// hostErrno returns the host errno err wraps or, failing that, whose
// words its message holds (a tool's stderr, or a library that formats
// errors with %v), or nil.
func hostErrno(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ToLower(err.Error())
	for _, e := range hostErrnos {
		if errors.Is(err, e) || strings.Contains(msg, e.Error()) {
			return e
		}
	}
	return nil
}

// failure is the error of a tool or writer the assembler ran: a host
// errno (a full output filesystem) is wrapped as such; anything else is
// ErrFailed, since the tool refused what the tree or options gave it.
func failure(assembler string, err error) error {
	return blame(fmt.Errorf("%s: %w", assembler, err))
}

// blame is failure without the assembler's name.
func blame(err error) error {
	if e := hostErrno(err); e != nil {
		if errors.Is(err, e) {
			return err
		}
		return fmt.Errorf("%w: %w", e, err)
	}
	return fmt.Errorf("%w: %w", ErrFailed, err)
}

// runTool runs an external program with env added to a minimal
// environment (a fixed locale, so messages and sorting do not depend on
// the caller's) and returns its stdout. The error names the command and
// holds its stderr, which is where these tools say what went wrong.
func runTool(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s is not installed: %w", name, err)
		}
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// runToolTo is runTool with stdout going to w, for output too big to hold.
func runToolTo(ctx context.Context, w io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
