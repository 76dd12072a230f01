//go:build wasip1

package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

type chownOptions struct {
	Items map[string]struct {
		User      json.RawMessage `json:"user"`
		Group     json.RawMessage `json:"group"`
		Recursive bool            `json:"recursive"`
	} `json:"items"`
}

// org.osbuild.chown changes owners as chown(1) does. Names are looked up in
// the tree's /etc/passwd and /etc/group (the image's accounts), never the
// host's. Like chown -R, it follows a symlink named in the options and
// leaves alone the symlinks it meets while walking.
func init() {
	sdk.Register("org.osbuild.chown", func(o chownOptions) error {
		var db *accountsView
		for _, name := range sortedKeys(o.Items) {
			item := o.Items[name]
			opt := fmt.Sprintf("items[%q]", name)
			p, err := optPath(opt, name)
			if err != nil {
				return err
			}
			if db == nil {
				if db, err = loadAccountsView(); err != nil {
					return err
				}
			}
			uid, err := db.id(opt+".user", item.User, db.user)
			if err != nil {
				return err
			}
			gid, err := db.id(opt+".group", item.Group, db.group)
			if err != nil {
				return err
			}
			if uid == -1 && gid == -1 {
				return fmt.Errorf("option %s: give user, group or both", opt)
			}
			if !item.Recursive {
				// chown(1) without -R changes what a symlink points at.
				real, err := filepath.EvalSymlinks(p)
				if err != nil {
					return fmt.Errorf("option %s: %w", opt, err)
				}
				if err := sdk.Lchown(real, uid, gid); err != nil {
					return fmt.Errorf("option %s: %w", opt, err)
				}
				continue
			}
			// osbuild runs chown -R, which is -P: symlinks themselves are
			// changed, the named one included, and never followed.
			err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				return sdk.Lchown(q, uid, gid)
			})
			if err != nil {
				return fmt.Errorf("option %s: %w", opt, err)
			}
		}
		return nil
	})
}

// id resolves a user or group option: a number, or a name looked up with
// lookup (a name made of digits that is not found counts as a number, as
// chown(1) does). Absent means -1, "leave unchanged".
func (v *accountsView) id(opt string, raw json.RawMessage, lookup func(string) (int, bool)) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		id, err := strconv.ParseUint(n.String(), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("option %q: %s is not an id", opt, n)
		}
		return int(id), nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return 0, fmt.Errorf("option %q: want a name or a number: %w", opt, err)
	}
	if id, ok := lookup(name); ok {
		return id, nil
	}
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		return int(id), nil
	}
	return 0, fmt.Errorf("option %q: no %q in the tree's account files", opt, name)
}
