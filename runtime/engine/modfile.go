package engine

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

const (
	// MaxModuleSize bounds a stage module kiln accepts. The largest
	// module of the stage library is a few MiB; compiling costs several
	// times a module's size in the worker's memory, so a module of
	// hundreds of MiB would cost gigabytes before it ran.
	MaxModuleSize = 64 << 20
	// MaxOptionsSize bounds a stage's options JSON: the worker holds it
	// while the stage runs, and the guest copies it into its memory.
	MaxOptionsSize = 16 << 20
)

var (
	// ErrNotRegular: a module path names something other than a regular
	// file (a FIFO, a device, a directory), which is refused without
	// opening it: opening a FIFO blocks and opening a device runs its
	// driver.
	ErrNotRegular = fsmeta.ErrNotRegular
	// ErrTooLarge: a module or an options document is over its limit.
	ErrTooLarge = errors.New("too large")
)

// ReadRegularFile reads path, which must be a regular file (after
// following symlinks) of at most limit bytes. The file is first opened
// O_PATH, which runs no driver and cannot block, and checked through that
// descriptor; only then is the same inode opened for reading, through
// /proc/self/fd, so a path swapped for a FIFO in between is not read
// (fsmeta.OpenPathRegular).
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	f, err := fsmeta.OpenPathRegular(path, func(st *unix.Stat_t) error {
		if st.Size > limit {
			return fmt.Errorf("%s: %w: %d bytes, over the limit of %d MiB", path, ErrTooLarge, st.Size, limit>>20)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may grow after the fstat: read at most one byte more
	// than the limit to tell.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: over the limit of %d MiB", path, ErrTooLarge, limit>>20)
	}
	return data, nil
}
