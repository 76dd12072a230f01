package assembler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copySparse copies the file at src into dst at offset off, data regions
// only: a filesystem image is mostly holes, which the disk already has.
func copySparse(ctx context.Context, dst *os.File, off int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	fd := int(in.Fd())
	buf := make([]byte, 1<<20)
	for pos := int64(0); pos < st.Size(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		r := io.NewSectionReader(in, data, hole-data)
		if err := copyFrom(ctx, io.NewOffsetWriter(dst, off+data), r, hole-data, buf); err != nil {
			return fmt.Errorf("copying %s into the disk: %w", src, err)
		}
		pos = hole
	}
	return nil
}
