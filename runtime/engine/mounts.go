package engine

import (
	"context"
	"fmt"

	"github.com/kilnbuild/kiln/hostfs"
	"github.com/tetratelabs/wazero"
)

// Guest paths of a stage's read-only inputs (docs/stage-abi.md).
const (
	guestSources = "/run/kiln/sources"
	guestBuild   = "/run/kiln/build"
)

// stageMounts is one stage's mount table: the tree read-write at "/", the
// inputs read-only. Every path the guest names, through WASI or through the
// kiln_hostfs host calls, resolves inside one of these roots.
type stageMounts struct {
	table []hostfs.Mount
}

func openMounts(req *stageRequest) (*stageMounts, error) {
	m := &stageMounts{}
	for _, d := range []struct {
		dir, guest string
		readOnly   bool
	}{{req.Tree, "/", false}, {req.Sources, guestSources, true}, {req.Build, guestBuild, true}} {
		if d.dir == "" {
			continue
		}
		opts := []hostfs.Option{hostfs.WithEpoch(req.Epoch)}
		if d.guest == "/" && req.TreeState != "" {
			opts = append(opts, hostfs.WithTreeState(req.TreeState))
		}
		root, err := hostfs.OpenRoot(d.dir, opts...)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("mounting %s at %s: %w", d.dir, d.guest, err)
		}
		m.table = append(m.table, hostfs.Mount{GuestPath: d.guest, Root: root, ReadOnly: d.readOnly})
	}
	return m, nil
}

func (m *stageMounts) close() {
	for _, mt := range m.table {
		// A close error on an O_PATH descriptor loses nothing.
		_ = mt.Root.Close()
	}
}

// withContext hands the mount table to the kiln_hostfs host functions.
func (m *stageMounts) withContext(ctx context.Context) context.Context {
	return hostfs.WithMounts(ctx, m.table)
}

func (m *stageMounts) fsConfig() wazero.FSConfig { return hostfs.FSConfig(m.table) }

// hostModuleName is the one host module besides WASI that stages may import.
const hostModuleName = hostfs.ModuleName

// instantiateHostModules adds the host modules every stage may import
// besides WASI, once per runtime.
func instantiateHostModules(ctx context.Context, rt wazero.Runtime) error {
	if _, err := hostfs.Instantiate(ctx, rt); err != nil {
		return fmt.Errorf("instantiating %s: %w", hostfs.ModuleName, err)
	}
	return nil
}
