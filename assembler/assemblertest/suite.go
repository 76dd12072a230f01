package assemblertest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/store/mountns"
)

// Case is one way to run an assembler: options that must succeed on the
// fixed tree.
type Case struct {
	Name    string // unique within the assembler, e.g. "gzip"
	Options string // JSON
	// Tools are the host programs it runs; a missing one skips the case.
	Tools []string
	// Files are the names it writes in the output directory, exactly.
	Files []string
	// Reproducible says two runs give the same bytes; only such cases
	// are pinned.
	Reproducible bool
}

// BadOption is options the assembler must refuse, with an error naming
// Option as `option "NAME"`.
type BadOption struct {
	Options string
	Option  string
}

// Config is one assembler under test.
type Config struct {
	Assembler assembler.Assembler
	Cases     []Case
	Bad       []BadOption
}

// Run is the suite every assembler passes, on the fixed tree:
//
//   - reproducible: each Reproducible case twice, into output directories
//     of other names, with every atime and ctime in the tree changed in
//     between, gives the same files and bytes;
//   - bad options: each Bad is refused naming its option, and so are an
//     unknown option and a known one spelled in another case (added to the
//     first case's options), before anything is written;
//   - cancellation: cancelled before it starts, and at points where it
//     checks its context (the 1st, 2nd, 4th, ... call of ctx.Err, and the
//     last), Assemble returns an error wrapping context.Canceled and
//     leaves the output directory empty;
//   - write errors: into a read-only output directory, and into one on a
//     filesystem too small for the output (a page, and half what the
//     output takes on tmpfs),
//     Assemble fails with an error naming the assembler and wrapping
//     EROFS/EACCES or ENOSPC, not assembler.ErrFailed (the input is not
//     at fault) and not naming an option, and leaves the directory empty.
//
// The filesystem checks mount tmpfs and need root in a private mount
// namespace (mountns.MustEnter in TestMain); without them they skip.
func Run(t *testing.T, c Config) {
	a := c.Assembler
	tree := filepath.Join(t.TempDir(), "tree")
	pinned := Tree(t, tree)
	t.Cleanup(func() { _ = unix.Chmod(filepath.Join(tree, "ro"), 0o755) })
	t.Logf("%s on %s", a.Name(), describeTree(pinned))
	for _, cs := range c.Cases {
		t.Run(cs.Name, func(t *testing.T) {
			needTools(t, cs.Tools)
			t.Run("reproducible", func(t *testing.T) { checkReproducible(t, a, tree, cs) })
			t.Run("cancel", func(t *testing.T) { checkCancel(t, a, tree, cs) })
			t.Run("write errors", func(t *testing.T) { checkWriteErrors(t, a, tree, cs) })
		})
	}
	t.Run("bad options", func(t *testing.T) {
		bad := slices.Clone(c.Bad)
		if len(c.Cases) > 0 {
			bad = append(bad, misnamed(t, c.Cases[0].Options)...)
		}
		for _, b := range bad {
			out := emptyDir(t)
			err := a.Assemble(t.Context(), assembler.Input{Tree: tree, Output: out, Options: json.RawMessage(b.Options), Epoch: Epoch})
			if !errors.Is(err, assembler.ErrFailed) || !strings.Contains(err.Error(), fmt.Sprintf("option %q", b.Option)) {
				t.Errorf("%s:\n got %v\nwant an error naming option %q", b.Options, err, b.Option)
			}
			if left := entries(t, out); len(left) > 0 {
				t.Errorf("%s: refused, but the output holds %q", b.Options, left)
			}
		}
	})
}

// misnamed returns opts with an unknown option added, and with its first
// option's name in upper case: both must be refused, naming them. Without
// the schema (an assembler can be called without it) encoding/json would
// ignore the first and take the second.
func misnamed(t *testing.T, opts string) []BadOption {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(opts), &m); err != nil {
		t.Fatalf("case options %s: %v", opts, err)
	}
	unknown := maps.Clone(m)
	unknown["kiln_no_such_option"] = json.RawMessage(`1`)
	bad := []BadOption{{marshal(t, unknown), "kiln_no_such_option"}}
	if len(m) > 0 {
		keys := slices.Sorted(maps.Keys(m))
		upper := maps.Clone(m)
		delete(upper, keys[0])
		upper[strings.ToUpper(keys[0])] = m[keys[0]]
		bad = append(bad, BadOption{marshal(t, upper), strings.ToUpper(keys[0])})
	}
	return bad
}

func marshal(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func needTools(t *testing.T, tools []string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (installed by .ci/run)", tool)
		}
	}
}

// emptyDir is a new empty directory that a user other than root can
// remove whatever the assembler left in it.
func emptyDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// entries lists a directory's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// Assemble runs one case into a new output directory and returns the
// directory and the sha256 of each file written; anything that is not
// one of cs.Files (scratch left behind, a directory) fails the test.
func Assemble(t *testing.T, a assembler.Assembler, tree string, cs Case) (string, map[string]string) {
	t.Helper()
	out := emptyDir(t)
	if err := a.Assemble(t.Context(), assembler.Input{Tree: tree, Output: out, Options: json.RawMessage(cs.Options), Epoch: Epoch}); err != nil {
		t.Fatalf("%s %s: %v", a.Name(), cs.Name, err)
	}
	return out, Digests(t, out, cs.Files)
}

// Digests returns "sha256:HEX" of each file in dir, which must hold
// exactly the regular files named.
func Digests(t *testing.T, dir string, names []string) map[string]string {
	t.Helper()
	got := entries(t, dir)
	if want := slices.Sorted(slices.Values(names)); !slices.Equal(got, want) {
		t.Fatalf("the output holds %q, want %q", got, want)
	}
	sums := map[string]string{}
	for _, name := range got {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			t.Fatalf("output %s is a %v, not a file", name, fi.Mode().Type())
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sums[name] = fmt.Sprintf("sha256:%x", h.Sum(nil))
	}
	return sums
}

func checkReproducible(t *testing.T, a assembler.Assembler, tree string, cs Case) {
	_, first := Assemble(t, a, tree, cs)
	if !cs.Reproducible {
		t.Skipf("%s %s is not reproducible (see docs/assemblers.md)", a.Name(), cs.Name)
	}
	Touch(t, tree)
	_, second := Assemble(t, a, tree, cs)
	for name, sum := range first {
		if second[name] != sum {
			t.Errorf("%s: two runs gave different bytes (%s, then %s)", name, sum, second[name])
		}
	}
}

// cancelAt is a context that cancels itself at the n-th call of its Err
// method, so that a test cancels an assembler at each point where it looks
// at its context, without timing anything.
type cancelAt struct {
	context.Context
	cancel context.CancelFunc
	n      int64
	calls  atomic.Int64
}

func (c *cancelAt) Err() error {
	if c.calls.Add(1) >= c.n {
		c.cancel()
	}
	return c.Context.Err()
}

func checkCancel(t *testing.T, a assembler.Assembler, tree string, cs Case) {
	run := func(n int64) (int64, []string, error) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := &cancelAt{Context: ctx, cancel: cancel, n: n}
		if n == 0 {
			cancel()
		}
		out := emptyDir(t)
		err := a.Assemble(c, assembler.Input{Tree: tree, Output: out, Options: json.RawMessage(cs.Options), Epoch: Epoch})
		return c.calls.Load(), entries(t, out), err
	}
	check := func(n int64) {
		calls, left, err := run(n)
		if err == nil {
			t.Errorf("cancelled at check %d (of %d), Assemble returned success", n, calls)
			return
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled at check %d: %v, want an error wrapping context.Canceled", n, err)
		}
		if len(left) > 0 {
			t.Errorf("cancelled at check %d: the output holds %q", n, left)
		}
	}
	// Cancelled before it starts.
	check(0)
	// The first run that ends before its cancellation point tells how many
	// checks the assembler makes; the last one is tried too. Only direct
	// calls are counted: a context derived from this one (WriteTar's) has
	// an Err of its own.
	total, _, err := run(1 << 62)
	if err != nil {
		t.Fatalf("uncancelled run: %v", err)
	}
	t.Logf("%d direct context checks", total)
	for n := int64(1); n < total && !t.Failed(); n *= 2 {
		check(n)
	}
	if total > 0 {
		check(total)
	}
}

func checkWriteErrors(t *testing.T, a assembler.Assembler, tree string, cs Case) {
	if _, sums := Assemble(t, a, tree, cs); len(sums) == 0 {
		t.Skipf("%s writes nothing", a.Name())
	}
	try := func(what string, out string, want ...syscall.Errno) {
		t.Helper()
		err := a.Assemble(t.Context(), assembler.Input{Tree: tree, Output: out, Options: json.RawMessage(cs.Options), Epoch: Epoch})
		wrapped := slices.ContainsFunc(want, func(e syscall.Errno) bool { return errors.Is(err, e) })
		switch {
		case err == nil:
			t.Errorf("%s: Assemble succeeded", what)
		case !wrapped || !strings.Contains(err.Error(), a.Name()):
			t.Errorf("%s: %v\nwant an error naming %s and wrapping %v", what, err, a.Name(), want)
		case errors.Is(err, assembler.ErrFailed) || strings.Contains(err.Error(), "option \""):
			t.Errorf("%s: %v\nblames the input (assembler.ErrFailed or an option) for the output's filesystem", what, err)
		}
		if left := entries(t, out); len(left) > 0 {
			t.Errorf("%s: the output holds %q after the error", what, left)
		}
	}
	t.Run("read-only", func(t *testing.T) {
		out := emptyDir(t)
		if os.Geteuid() != 0 {
			// Without root, the directory's mode is enough.
			if err := os.Chmod(out, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(out, 0o755) })
			try("read-only directory", out, syscall.EACCES)
			return
		}
		mountTmpfs(t, out, unix.MS_RDONLY, 1<<20)
		try("read-only filesystem", out, syscall.EROFS)
	})
	t.Run("full", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to mount a small tmpfs")
		}
		// What the output takes on tmpfs (a filesystem's allocation differs
		// from another's: ext4 counts preallocated extents, tmpfs pages).
		big := emptyDir(t)
		mountTmpfs(t, big, 0, 4<<30)
		err := a.Assemble(t.Context(), assembler.Input{Tree: tree, Output: big, Options: json.RawMessage(cs.Options), Epoch: Epoch})
		if err != nil {
			t.Fatal(err)
		}
		var used int64
		for _, name := range entries(t, big) {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(big, name), &st); err != nil {
				t.Fatal(err)
			}
			used += st.Blocks * 512
		}
		page := int64(os.Getpagesize())
		sizes := []int64{page}
		if half := used / 2 / page * page; half > page {
			sizes = append(sizes, half)
		}
		for _, size := range sizes {
			out := emptyDir(t)
			mountTmpfs(t, out, 0, size)
			try(fmt.Sprintf("a %d-byte filesystem (the output takes %d)", size, used), out, syscall.ENOSPC)
		}
	})
}

// mountTmpfs mounts a tmpfs of size bytes on dir for the test, in the
// private mount namespace only, so a killed test leaves no mount behind.
func mountTmpfs(t *testing.T, dir string, flags uintptr, size int64) {
	t.Helper()
	if err := mountns.Check(); err != nil {
		t.Skipf("mounts a tmpfs: %v", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags|unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
	})
}
