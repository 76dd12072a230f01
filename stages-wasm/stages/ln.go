//go:build wasip1

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/treepath"
)

type lnOptions struct {
	Paths []struct {
		Target   string `json:"target"`
		LinkName string `json:"link_name"`
		Symbolic bool   `json:"symbolic"`
	} `json:"paths"`
}

// org.osbuild.ln makes hard links (the default, as osbuild) or symbolic
// links. A symlink's target is written as given (relative or absolute,
// tree:// stripped); a hard link's target must be a path in the tree.
func init() {
	sdk.Register("org.osbuild.ln", func(o lnOptions) error {
		for i, p := range o.Paths {
			link, err := optPath(fmt.Sprintf("paths[%d].link_name", i), p.LinkName)
			if err != nil {
				return err
			}
			topt := fmt.Sprintf("paths[%d].target", i)
			if strings.HasPrefix(p.Target, "mount://") {
				return fmt.Errorf("option %q: %w", topt, treepath.ErrMount)
			}
			if p.Symbolic {
				target := p.Target
				if strings.HasPrefix(target, "tree://") {
					if target, err = optPath(topt, target); err != nil {
						return err
					}
				}
				if target == "" {
					return fmt.Errorf("option %q: empty", topt)
				}
				if err := os.Symlink(target, link); err != nil {
					return fmt.Errorf("option %q: %w", fmt.Sprintf("paths[%d].link_name", i), err)
				}
				continue
			}
			target, err := optPath(topt, p.Target)
			if err != nil {
				return err
			}
			if err := os.Link(target, link); err != nil {
				return fmt.Errorf("option %q: %w", fmt.Sprintf("paths[%d].link_name", i), err)
			}
		}
		return nil
	})
}
