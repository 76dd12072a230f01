package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// PlainModulePath is a module's path without its compression suffix
// (.xz, .zst, .gz): modules are stored decompressed in the initramfs so
// that busybox's insmod, which may lack xz and zstd, loads them.
func PlainModulePath(p string) string {
	for _, s := range []string{".xz", ".zst", ".gz"} {
		if q, ok := strings.CutSuffix(p, s); ok {
			return q
		}
	}
	return p
}

// maxModule bounds a decompressed module: the largest in Debian 12's
// kernel is under 20 MiB; a compression bomb stops here.
const maxModule = 256 << 20

// DecompressModule returns the module file p decompressed as its suffix
// says (kmod's .ko.xz, .ko.zst, .ko.gz), or data itself for a plain .ko.
func DecompressModule(p string, data []byte) ([]byte, error) {
	var r io.Reader
	var err error
	switch {
	case strings.HasSuffix(p, ".xz"):
		r, err = xz.NewReader(bytes.NewReader(data))
	case strings.HasSuffix(p, ".zst"):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1))
		if err == nil {
			defer d.Close()
			r = d
		}
	case strings.HasSuffix(p, ".gz"):
		r, err = gzip.NewReader(bytes.NewReader(data))
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxModule+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(out) > maxModule {
		return nil, fmt.Errorf("%s: decompresses to more than %d bytes", p, maxModule)
	}
	return out, nil
}
