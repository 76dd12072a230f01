//go:build wasip1

package main

import (
	"fmt"
	"io/fs"

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
//
// osbuild runs groupadd once per group, and each run that changes a file
// first saves it as FILE- (shadow-utils' commonio backup: the old text,
// with the old file's owner, mode and times). The backups kiln writes are
// the ones that leaves behind: the text before the last group added.
func init() {
	sdk.Register("org.osbuild.groups", func(o groupsOptions) error {
		db, err := loadDB()
		if err != nil {
			return err
		}
		group, err := newBackup(groupFile, db.Group)
		if err != nil {
			return err
		}
		gshadow, err := newBackup(gshadowFile, db.Gshadow)
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(o.Groups) {
			before, beforeShadow := db.Group.String(), db.Gshadow.String()
			added, err := db.AddGroup(accounts.Group{Name: name, GID: o.Groups[name].GID, Force: o.Force})
			if err != nil {
				return fmt.Errorf("option \"groups[%q]\": %w", name, err)
			}
			if added {
				group.changed(before)
				gshadow.changed(beforeShadow)
			}
		}
		if err := saveDB(db); err != nil {
			return err
		}
		if err := group.write(); err != nil {
			return err
		}
		return gshadow.write()
	})
}

// backup is the FILE- copy shadow-utils leaves next to an account file.
type backup struct {
	path   string
	found  bool     // the tree had the file
	st     sdk.Stat // the file as the stage found it
	text   string   // the text before the last change
	writes int      // how many groupadd runs would have written the file
}

func newBackup(path string, t *accounts.Table) (*backup, error) {
	b := &backup{path: path, found: t.Present}
	if !b.found {
		return b, nil
	}
	var err error
	if b.st, err = sdk.Lstat(path); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *backup) changed(before string) {
	b.text = before
	b.writes++
}

// write saves the backup once the file itself is written. Its owner and
// mode are the file's; when it holds the original text its times are the
// original's too, else the clock's (SOURCE_DATE_EPOCH), as an earlier
// groupadd run would have stamped the file.
func (b *backup) write() error {
	if b.writes == 0 || !b.found {
		return nil // unchanged, or a file the tree did not have: no backup
	}
	dst := b.path + "-"
	if err := removeInTheWay(dst); err != nil {
		return fmt.Errorf("backing up %s: %w", b.path, err)
	}
	perm := b.st.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if err := putFile(dst, []byte(b.text), perm, int(b.st.Uid), int(b.st.Gid)); err != nil {
		return fmt.Errorf("backing up %s: %w", b.path, err)
	}
	if b.writes == 1 {
		if err := sdk.Utimens(dst, b.st.Atime, b.st.Mtime); err != nil {
			return fmt.Errorf("backing up %s: %w", b.path, err)
		}
	}
	return nil
}
