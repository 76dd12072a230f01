package hostfs

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// A Mount places a root at a guest path. A stage sees its tree at "/" and
// its inputs read-only at "/run/kiln/sources" and "/run/kiln/build".
type Mount struct {
	GuestPath string // absolute guest path
	Root      *Root
	ReadOnly  bool // every write through this mount returns EROFS
}

// FSConfig mounts each root with [NewFS] at its guest path. Build the module
// config with it and the host calls' context with [WithMounts] from the same
// table, so WASI calls and kiln_hostfs calls see the same files. Like
// WithMounts it panics on a nil Root or a relative GuestPath.
func FSConfig(mounts []Mount) wazero.FSConfig {
	cfg := wazero.NewFSConfig()
	checkMounts(mounts)
	// In the caller's order: preopen descriptors are numbered in it.
	for _, m := range mounts {
		cfg = cfg.(sysfs.FSConfig).WithSysFSMount(newFS(m.Root, m.ReadOnly, m.GuestPath), m.GuestPath)
	}
	return cfg
}

type mountsKey struct{}

// WithMounts returns a context carrying the mount table for the kiln_hostfs
// host functions. Pass it (or a context derived from it) to
// InstantiateModule or to the guest function call: wazero hands that context
// to each host call, so one host module serves stages with different trees.
// It panics if a mount has a nil Root or a relative GuestPath, which are
// programming errors.
func WithMounts(ctx context.Context, mounts []Mount) context.Context {
	return withStreams(context.WithValue(ctx, mountsKey{}, mountTable(checkMounts(mounts))))
}

// checkMounts validates and copies mounts, cleaning guest paths and sorting
// the longest first, so the first prefix match is the most specific mount.
func checkMounts(mounts []Mount) []Mount {
	out := make([]Mount, len(mounts))
	for i, m := range mounts {
		if m.Root == nil {
			panic(fmt.Sprintf("hostfs: mount %q has a nil Root", m.GuestPath))
		}
		if !strings.HasPrefix(m.GuestPath, "/") {
			panic(fmt.Sprintf("hostfs: mount guest path %q is not absolute", m.GuestPath))
		}
		m.GuestPath = path.Clean(m.GuestPath)
		out[i] = m
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].GuestPath) > len(out[j].GuestPath) })
	return out
}

type mountTable []Mount

// find returns the mount holding the clean absolute guest path p, and p
// relative to that mount ("." for the mount point itself). The match is
// lexical, on whole components, as wazero and wasi-libc pick a preopen.
func (t mountTable) find(p string) (Mount, string, bool) {
	for _, m := range t {
		switch {
		case p == m.GuestPath:
			return m, ".", true
		case m.GuestPath == "/":
			return m, p[1:], true
		case strings.HasPrefix(p, m.GuestPath+"/"):
			return m, p[len(m.GuestPath)+1:], true
		}
	}
	return Mount{}, "", false
}
