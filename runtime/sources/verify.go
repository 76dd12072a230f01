package sources

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Problem is one damaged entry of the sources directory.
type Problem struct {
	Path     string // the entry, under dir/org.osbuild.files
	Checksum string // its name, which is the checksum its content must have
	Reason   string // what is wrong, e.g. "content does not match its name"
	// Repaired: repair removed the entry (or, for a wrong mode only,
	// set it to 0600), so the next build fetches it again.
	Repaired bool
}

func (p Problem) String() string {
	s := p.Path + ": " + p.Reason
	if p.Repaired {
		s += " (repaired)"
	}
	return s
}

// Verify checks every stored source under dir (<store>/sources) against
// the checksum that names it: an entry of org.osbuild.files/ must have a
// checksum as its name, be a regular file of mode 0600 and hash to its
// name. It returns one Problem per damaged entry, sorted by path; with
// repair, damaged entries are removed (a wrong mode alone is corrected).
// Non-regular entries are never opened. A missing directory holds nothing
// damaged. The error is for what stopped the check (ctx, an unreadable
// directory), not for damage; it may come with the problems found so far.
func Verify(ctx context.Context, dir string, repair bool) ([]Problem, error) {
	sub := filepath.Join(dir, FilesType)
	entries, err := os.ReadDir(sub)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	var problems []Problem
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return problems, err
		}
		p := Problem{Path: filepath.Join(sub, e.Name()), Checksum: e.Name()}
		reason, modeOnly, err := check(ctx, p.Path, e.Name())
		if err != nil {
			return problems, err
		}
		if reason == "" {
			continue
		}
		p.Reason = reason
		if repair {
			if modeOnly {
				err = os.Chmod(p.Path, 0o600)
			} else {
				err = os.RemoveAll(p.Path)
			}
			if err != nil {
				return problems, fmt.Errorf("sources: repairing %s: %w", p.Path, err)
			}
			p.Repaired = true
		}
		problems = append(problems, p)
	}
	return problems, nil
}

// check says what is wrong with the entry at path named name, "" for
// nothing; modeOnly is set when only its mode is.
func check(ctx context.Context, path, name string) (reason string, modeOnly bool, err error) {
	if !checksumRE.MatchString(name) {
		return "name is not a checksum (sha256:, sha384: or sha512: and lowercase hex)", false, nil
	}
	st, err := os.Lstat(path)
	if err != nil {
		return "", false, fmt.Errorf("sources: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Sprintf("not a regular file (%s)", st.Mode().Type()), false, nil
	}
	// O_NOFOLLOW and O_NONBLOCK: should the entry be swapped for a link
	// or a FIFO after the Lstat, the open fails or returns at once.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", false, fmt.Errorf("sources: %w", err)
	}
	defer fh.Close()
	if fst, err := fh.Stat(); err != nil || !fst.Mode().IsRegular() {
		return "not a regular file", false, nil
	}
	algo, want, _ := strings.Cut(name, ":")
	h := newHash(algo)
	if _, err := io.Copy(h, ctxReader{ctx, fh}); err != nil {
		if ctx.Err() != nil {
			return "", false, ctx.Err()
		}
		return fmt.Sprintf("unreadable: %v", err), false, nil
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return "content does not match its name", false, nil
	}
	if st.Mode().Perm() != 0o600 {
		return fmt.Sprintf("mode %04o, want 0600 (a source may copy a file only its user could read)", st.Mode().Perm()), true, nil
	}
	return "", false, nil
}
