package engine

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// INTERIM: DirFS until hostfs lands. Not a sandbox.
type stageMounts struct {
	cfg wazero.FSConfig
}

func openMounts(req *stageRequest) (*stageMounts, error) {
	cfg := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(sysfs.DirFS(req.Tree), "/")
	if req.Sources != "" {
		cfg = cfg.(sysfs.FSConfig).WithSysFSMount(&sysfs.ReadFS{FS: sysfs.DirFS(req.Sources)}, "/run/kiln/sources")
	}
	if req.Build != "" {
		cfg = cfg.(sysfs.FSConfig).WithSysFSMount(&sysfs.ReadFS{FS: sysfs.DirFS(req.Build)}, "/run/kiln/build")
	}
	return &stageMounts{cfg: cfg}, nil
}

func (m *stageMounts) close()                                          {}
func (m *stageMounts) withContext(ctx context.Context) context.Context { return ctx }
func (m *stageMounts) fsConfig() wazero.FSConfig                       { return m.cfg }

func instantiateHostModules(ctx context.Context, rt wazero.Runtime) error { return nil }
