//go:build wasip1

package main

import (
	"fmt"
	"os"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/accounts"
)

// Account files of the tree.
const (
	passwdFile  = "/etc/passwd"
	groupFile   = "/etc/group"
	shadowFile  = "/etc/shadow"
	gshadowFile = "/etc/gshadow"
	subuidFile  = "/etc/subuid"
	subgidFile  = "/etc/subgid"
)

// loadDB reads the tree's account files, login.defs and default/useradd.
// /etc/passwd and /etc/group must exist: a tree without them has no base
// system to add accounts to.
func loadDB() (*accounts.DB, error) {
	db := &accounts.DB{Today: int(time.Now().Unix() / 86400)}
	for _, f := range []struct {
		path     string
		tab      **accounts.Table
		required bool
	}{{passwdFile, &db.Passwd, true}, {groupFile, &db.Group, true}, {shadowFile, &db.Shadow, false}, {gshadowFile, &db.Gshadow, false},
		{subuidFile, &db.SubUID, false}, {subgidFile, &db.SubGID, false}} {
		text, ok, err := readOptional(f.path)
		if err != nil {
			return nil, err
		}
		if !ok && f.required {
			return nil, fmt.Errorf("%s is not in the tree (install the base system, e.g. the setup package, first)", f.path)
		}
		*f.tab = accounts.ParseTable(text, ok)
	}
	defs, _, err := readOptional("/etc/login.defs")
	if err != nil {
		return nil, err
	}
	useradd, _, err := readOptional("/etc/default/useradd")
	if err != nil {
		return nil, err
	}
	db.Defs, db.Useradd = accounts.ParseDefs(defs), accounts.ParseDefs(useradd)
	return db, nil
}

// saveDB writes back the files that changed, keeping their modes and owners
// (shadow files are 0000 or 0640 depending on the distribution).
func saveDB(db *accounts.DB) error {
	for _, f := range []struct {
		path string
		tab  *accounts.Table
		mode os.FileMode
	}{{passwdFile, db.Passwd, 0o644}, {groupFile, db.Group, 0o644}, {shadowFile, db.Shadow, 0}, {gshadowFile, db.Gshadow, 0},
		{subuidFile, db.SubUID, 0o644}, {subgidFile, db.SubGID, 0o644}} {
		if !f.tab.Changed() || !f.tab.Present {
			continue
		}
		if err := writeConfig(f.path, []byte(f.tab.String()), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// accountsView resolves names for chown and friends.
type accountsView struct{ db *accounts.DB }

func loadAccountsView() (*accountsView, error) {
	db := &accounts.DB{}
	for _, f := range []struct {
		path string
		tab  **accounts.Table
	}{{passwdFile, &db.Passwd}, {groupFile, &db.Group}} {
		text, ok, err := readOptional(f.path)
		if err != nil {
			return nil, err
		}
		*f.tab = accounts.ParseTable(text, ok)
	}
	return &accountsView{db: db}, nil
}

func (v *accountsView) user(name string) (int, bool)  { return v.db.LookupUser(name) }
func (v *accountsView) group(name string) (int, bool) { return v.db.LookupGroup(name) }
