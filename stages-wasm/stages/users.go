//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/accounts"
)

type userOptions struct {
	UID                *int     `json:"uid"`
	GID                *int     `json:"gid"`
	Groups             []string `json:"groups"`
	Description        *string  `json:"description"`
	Home               *string  `json:"home"`
	Shell              *string  `json:"shell"`
	Password           *string  `json:"password"`
	Key                *string  `json:"key"`
	Keys               []string `json:"keys"`
	ExpireDate         *int     `json:"expiredate"`
	ForcePasswordReset bool     `json:"force_password_reset"`
}

type usersOptions struct {
	Users map[string]userOptions `json:"users"`
}

// org.osbuild.users adds users as useradd would (or changes existing ones
// as usermod would), makes new homes from /etc/skel and appends SSH keys to
// ~/.ssh/authorized_keys. Users are handled in name order, so that chosen
// uids do not depend on JSON order.
func init() {
	sdk.Register("org.osbuild.users", func(o usersOptions) error {
		db, err := loadDB()
		if err != nil {
			return err
		}
		type home struct {
			name string
			acc  accounts.Account
			keys []string
		}
		var homes []home
		for _, name := range sortedKeys(o.Users) {
			u := o.Users[name]
			opt := fmt.Sprintf("users[%q]", name)
			if u.Home != nil && !strings.HasPrefix(*u.Home, "/") {
				return fmt.Errorf("option \"%s.home\": %q is not absolute", opt, *u.Home)
			}
			acc, err := db.AddUser(accounts.User{
				Name: name, UID: u.UID, GID: u.GID, Groups: u.Groups, Description: u.Description,
				Home: u.Home, Shell: u.Shell, Password: u.Password, ExpireDate: u.ExpireDate,
			})
			if err != nil {
				return fmt.Errorf("option %s: %w", opt, err)
			}
			if u.ForcePasswordReset {
				if err := db.ExpirePassword(name); err != nil {
					return fmt.Errorf("option \"%s.force_password_reset\": %w", opt, err)
				}
			}
			keys := u.Keys
			if u.Key != nil {
				keys = append([]string{*u.Key}, keys...)
			}
			homes = append(homes, home{name, acc, keys})
		}
		if err := saveDB(db); err != nil {
			return err
		}
		for _, h := range homes {
			if h.acc.Created {
				if err := makeHome(h.acc, db.HomeMode()); err != nil {
					return fmt.Errorf("user %q: home %s: %w", h.name, h.acc.Home, err)
				}
			}
			if len(h.keys) > 0 {
				if err := addKeys(h.acc, h.keys); err != nil {
					return fmt.Errorf("option \"users[%q].keys\": %w", h.name, err)
				}
			}
		}
		return nil
	})
}

// makeHome makes a new user's home as useradd -m does: a copy of /etc/skel
// owned by the user, the home itself with HOME_MODE. An existing directory
// is left as it is, as useradd does.
func makeHome(acc accounts.Account, mode uint32) error {
	if ok, err := exists(acc.Home); err != nil || ok {
		return err
	}
	if err := mkdirAll(path.Dir(acc.Home), 0o755, 0, 0); err != nil {
		return err
	}
	if err := os.Mkdir(acc.Home, 0o700); err != nil {
		return err
	}
	if err := setOwnerMode(acc.Home, acc.UID, acc.GID, permMode(mode)); err != nil {
		return err
	}
	const skel = "/etc/skel"
	if ok, err := exists(skel); err != nil || !ok {
		return err
	}
	return filepath.WalkDir(skel, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == skel {
			return err
		}
		dst := path.Join(acc.Home, strings.TrimPrefix(p, skel+"/"))
		st, err := sdk.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			return sdk.Lchown(dst, acc.UID, acc.GID)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				return err
			}
		default:
			return nil // useradd copies no device nodes or sockets out of skel
		}
		return setOwnerMode(dst, acc.UID, acc.GID, st.Mode&^fs.ModeType)
	})
}

// addKeys appends SSH public keys to ~/.ssh/authorized_keys, making the
// directory 0700 and the file 0600, both the user's, as sshd insists.
func addKeys(acc accounts.Account, keys []string) error {
	for i, k := range keys {
		if strings.ContainsAny(k, "\n\r") || strings.TrimSpace(k) == "" {
			return fmt.Errorf("key %d is empty or spans lines", i)
		}
	}
	if ok, err := exists(acc.Home); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("home %s does not exist", acc.Home)
	}
	dir := path.Join(acc.Home, ".ssh")
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := setOwnerMode(dir, acc.UID, acc.GID, 0o700); err != nil {
		return err
	}
	file := path.Join(dir, "authorized_keys")
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(keys, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setOwnerMode(file, acc.UID, acc.GID, 0o600)
}
