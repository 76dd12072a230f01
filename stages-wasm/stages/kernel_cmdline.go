//go:build wasip1

package main

import (
	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

type kernelCmdlineOptions struct {
	RootFSUUID        string `json:"root_fs_uuid"`
	KernelOpts        string `json:"kernel_opts"`
	KernelCmdlineSize int    `json:"kernel_cmdline_size"`
}

// org.osbuild.kernel-cmdline writes /etc/kernel/cmdline, which
// kernel-install reads, exactly as osbuild does: no trailing newline.
func init() {
	sdk.Register("org.osbuild.kernel-cmdline", func(o kernelCmdlineOptions) error {
		s, err := render.KernelCmdline(o.RootFSUUID, o.KernelOpts, o.KernelCmdlineSize)
		if err != nil {
			return err
		}
		if err := mkdirAll("/etc/kernel", 0o755, 0, 0); err != nil {
			return err
		}
		return writeConfig("/etc/kernel/cmdline", []byte(s), 0o644)
	})
}
