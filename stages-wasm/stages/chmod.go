//go:build wasip1

package main

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/modespec"
)

type chmodOptions struct {
	Items map[string]struct {
		Mode      string `json:"mode"`
		Recursive bool   `json:"recursive"`
	} `json:"items"`
}

// org.osbuild.chmod changes modes as chmod(1) does, numeric or symbolic,
// optionally recursively. Like chmod -R, it follows a symlink named in the
// options but skips the symlinks it meets while walking.
func init() {
	sdk.Register("org.osbuild.chmod", func(o chmodOptions) error {
		for _, name := range sortedKeys(o.Items) {
			item := o.Items[name]
			opt := fmt.Sprintf("items[%q]", name)
			p, err := optPath(opt, name)
			if err != nil {
				return err
			}
			spec, err := modespec.Parse(item.Mode)
			if err != nil {
				return fmt.Errorf("option \"%s.mode\": %w", opt, err)
			}
			if err := chmodOne(p, spec); err != nil {
				return fmt.Errorf("option %s: %w", opt, err)
			}
			if !item.Recursive {
				continue
			}
			err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
				if err != nil || q == p || d.Type()&fs.ModeSymlink != 0 {
					return err
				}
				return chmodOne(q, spec)
			})
			if err != nil {
				return fmt.Errorf("option %s: %w", opt, err)
			}
		}
		return nil
	})
}

func chmodOne(p string, spec modespec.Spec) error {
	// Stat, not Lstat: chmod follows a final symlink.
	st, err := statFollow(p)
	if err != nil {
		return err
	}
	return sdk.Chmod(p, permMode(spec.Apply(st.RawMode, st.Mode.IsDir())))
}

// statFollow is sdk.Lstat after resolving symlinks in the tree.
func statFollow(p string) (sdk.Stat, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return sdk.Stat{}, err
	}
	return sdk.Lstat(real)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
