//go:build wasip1

package main

import (
	"fmt"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/accounts"
)

type groupsOptions struct {
	Groups map[string]struct {
		GID *int `json:"gid"`
	} `json:"groups"`
	Force bool `json:"force"`
}

// org.osbuild.groups adds groups to /etc/group and /etc/gshadow as groupadd
// would, in name order so that chosen gids do not depend on JSON order.
func init() {
	sdk.Register("org.osbuild.groups", func(o groupsOptions) error {
		db, err := loadDB()
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(o.Groups) {
			if _, err := db.AddGroup(accounts.Group{Name: name, GID: o.Groups[name].GID, Force: o.Force}); err != nil {
				return fmt.Errorf("option \"groups[%q]\": %w", name, err)
			}
		}
		return saveDB(db)
	})
}
