//go:build wasip1

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type truncateOptions struct {
	Filename string `json:"filename"`
	Size     string `json:"size"`
}

// org.osbuild.truncate sets a file's size as truncate(1) --size does.
// The shipped library uses the C build of this stage (stages-wasm/stages/c);
// this one stays in the Go module as the fallback when clang is missing and
// as a second implementation the golden tests hold the C one to.
func init() {
	sdk.Register("org.osbuild.truncate", func(o truncateOptions) error {
		p, err := optPath("filename", o.Filename)
		if err != nil {
			return err
		}
		op, n, err := parseTruncateSize(o.Size)
		if err != nil {
			return fmt.Errorf("option \"size\": %q: %w", o.Size, err)
		}
		had, err := exists(p)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("option \"filename\": %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		size := st.Size()
		switch op {
		case '=':
			size = n
		case '+':
			size += n
		case '-':
			size = max(size-n, 0)
		case '<':
			size = min(size, n)
		case '>':
			size = max(size, n)
		case '/':
			size = size / n * n
		case '%':
			size = (size + n - 1) / n * n
		}
		if err := f.Truncate(size); err != nil {
			return err
		}
		if !had {
			return setOwnerMode(p, 0, 0, 0o644)
		}
		return nil
	})
}

// parseTruncateSize reads truncate(1)'s SIZE: an optional operator (+ - <
// > / %), a number and a unit (K, M, G, ... powers of 1024, with an
// optional "iB"; KB, MB, ... powers of 1000).
func parseTruncateSize(s string) (byte, int64, error) {
	op := byte('=')
	if s != "" && strings.IndexByte("+-<>/%", s[0]) >= 0 {
		op, s = s[0], s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, 0, fmt.Errorf("no number")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	unit := s[i:]
	mult := int64(1)
	if unit != "" {
		pos := strings.IndexByte("KMGTPE", unit[0])
		if pos < 0 {
			return 0, 0, fmt.Errorf("unknown unit %q", unit)
		}
		base := int64(1024)
		switch unit[1:] {
		case "", "iB":
		case "B":
			base = 1000
		default:
			return 0, 0, fmt.Errorf("unknown unit %q", unit)
		}
		for j := 0; j <= pos; j++ {
			if mult > (1<<62)/base {
				return 0, 0, fmt.Errorf("too large")
			}
			mult *= base
		}
	}
	if n > 0 && mult > (1<<62)/n {
		return 0, 0, fmt.Errorf("too large")
	}
	if (op == '/' || op == '%') && n == 0 {
		return 0, 0, fmt.Errorf("division by zero")
	}
	return op, n * mult, nil
}
