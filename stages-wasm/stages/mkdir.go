//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type mkdirOptions struct {
	Paths []struct {
		Path    string `json:"path"`
		Mode    *int64 `json:"mode"`
		Parents bool   `json:"parents"`
		ExistOK bool   `json:"exist_ok"`
	} `json:"paths"`
}

// osbuildUmask is the umask osbuild's stages run with; mkdir's modes pass
// through it as os.mkdir's do there, so that a manifest gives the same
// modes in kiln.
const osbuildUmask = 0o022

// org.osbuild.mkdir makes directories, owned by root, with mode (default
// 0777) less the umask 022, optionally with missing parents (0755).
func init() {
	sdk.Register("org.osbuild.mkdir", func(o mkdirOptions) error {
		for i, p := range o.Paths {
			opt := fmt.Sprintf("paths[%d].path", i)
			dir, err := optPath(opt, p.Path)
			if err != nil {
				return err
			}
			mode := uint32(0o777)
			if p.Mode != nil {
				if *p.Mode < 0 || *p.Mode > 0o7777 {
					return fmt.Errorf("option \"paths[%d].mode\": %d is not a mode (0 to 4095, i.e. 07777)", i, *p.Mode)
				}
				mode = uint32(*p.Mode)
			}
			mode &^= osbuildUmask
			if p.Parents {
				if err := mkdirAll(path.Dir(dir), 0o755, 0, 0); err != nil {
					return fmt.Errorf("option %q: making parents: %w", opt, err)
				}
			}
			err = os.Mkdir(dir, 0o700)
			if errors.Is(err, fs.ErrExist) {
				st, serr := os.Stat(dir)
				if p.ExistOK && serr == nil && st.IsDir() {
					continue
				}
				return fmt.Errorf("option %q: %s exists (set exist_ok to accept an existing directory)", opt, dir)
			}
			if err != nil {
				return fmt.Errorf("option %q: %w", opt, err)
			}
			if err := setOwnerMode(dir, 0, 0, permMode(mode)); err != nil {
				return fmt.Errorf("option %q: %w", opt, err)
			}
		}
		return nil
	})
}
