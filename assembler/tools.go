package assembler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	return dir, func() { removeAll(dir) }, nil
}

// removeAll removes dir even where a copied read-only directory would
// stop os.RemoveAll for a user other than root, by making directories
// writable first.
func removeAll(dir string) error {
	if os.RemoveAll(dir) == nil {
		return nil
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
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
