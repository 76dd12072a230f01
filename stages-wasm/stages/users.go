//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
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
// uids do not depend on JSON order. As in osbuild's stage: a given uid may
// be one another user has (useradd -o), `home: ""` makes a new user
// without a home (useradd --no-create-home), an existing user whose home
// is missing gets it as mkhomedir_helper makes it, and the `keys` go
// before the `key`.
func init() {
	sdk.Register("org.osbuild.users", func(o usersOptions) error {
		db, err := loadDB()
		if err != nil {
			return err
		}
		type home struct {
			name   string
			acc    accounts.Account
			keys   []string
			noHome bool
		}
		var homes []home
		for _, name := range sortedKeys(o.Users) {
			u := o.Users[name]
			opt := fmt.Sprintf("users[%q]", name)
			homeDir, noHome := u.Home, false
			if u.Home != nil && *u.Home == "" {
				// osbuild: useradd --no-create-home, usermod without
				// --home; the home in passwd is the default or stays.
				homeDir, noHome = nil, true
			}
			if homeDir != nil && !strings.HasPrefix(*homeDir, "/") {
				return fmt.Errorf("option \"%s.home\": %q is not absolute", opt, *homeDir)
			}
			acc, err := db.AddUser(accounts.User{
				Name: name, UID: u.UID, GID: u.GID, Groups: u.Groups, Description: u.Description,
				Home: homeDir, Shell: u.Shell, Password: u.Password, ExpireDate: u.ExpireDate,
				NonUnique: true,
			})
			if err != nil {
				return fmt.Errorf("option %s: %w", opt, err)
			}
			if u.ForcePasswordReset {
				if err := db.ExpirePassword(name); err != nil {
					return fmt.Errorf("option \"%s.force_password_reset\": %w", opt, err)
				}
			}
			// osbuild appends the key after the keys, and skips an
			// empty one.
			keys := slices.Clone(u.Keys)
			if u.Key != nil && *u.Key != "" {
				keys = append(keys, *u.Key)
			}
			homes = append(homes, home{name, acc, keys, noHome})
		}
		if err := saveDB(db); err != nil {
			return err
		}
		for _, h := range homes {
			var err error
			switch {
			case h.acc.Created && !h.noHome:
				err = makeHome(h.acc, db.HomeMode())
			case !h.acc.Created:
				// osbuild runs mkhomedir_helper in the tree for every
				// existing user it handles whose home is missing: a
				// user given a new home, or one that had none.
				err = mkhomedir(h.acc)
			}
			if err != nil {
				return fmt.Errorf("user %q: home %s: %w", h.name, h.acc.Home, err)
			}
			if h.acc.Created && h.acc.Mail != nil {
				if err := makeMailbox(*h.acc.Mail); err != nil {
					return fmt.Errorf("user %q: mailbox %s: %w", h.name, h.acc.Mail.Path, err)
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
// owned by the user, the home itself with HOME_MODE, the rest with skel's
// modes. An existing directory is left as it is, as useradd does.
func makeHome(acc accounts.Account, mode uint32) error {
	return copySkel(acc, permMode(mode), func(_ bool, st sdk.Stat) fs.FileMode {
		return st.Mode &^ fs.ModeType
	})
}

// copySkel makes acc's home, mode home, unless it exists: the missing
// parents 0755 for root, then a copy of /etc/skel owned by the user, each
// directory and file given the mode modeOf returns for skel's entry, each
// symlink copied. Device nodes, FIFOs and sockets in skel are not copied
// (neither useradd nor mkhomedir_helper copy them).
func copySkel(acc accounts.Account, home fs.FileMode, modeOf func(dir bool, st sdk.Stat) fs.FileMode) error {
	if ok, err := exists(acc.Home); err != nil || ok {
		return err
	}
	if err := mkdirAll(path.Dir(acc.Home), 0o755, 0, 0); err != nil {
		return err
	}
	if err := os.Mkdir(acc.Home, 0o700); err != nil {
		return err
	}
	if err := setOwnerMode(acc.Home, acc.UID, acc.GID, home); err != nil {
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
			return nil
		}
		st, err := sdk.Lstat(p)
		if err != nil {
			return err
		}
		return setOwnerMode(dst, acc.UID, acc.GID, modeOf(d.IsDir(), st))
	})
}

// makeMailbox makes a new user's empty mailbox as useradd does. useradd
// only warns when the spool directory is missing or the mailbox exists,
// and so does the stage.
func makeMailbox(m accounts.Mail) error {
	f, err := os.OpenFile(m.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
		warnf("not making the mailbox %s: %v", m.Path, err)
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return setOwnerMode(m.Path, m.UID, m.GID, permMode(m.Mode))
}

// mkhomedir makes a missing home as mkhomedir_helper USER does (Linux-PAM;
// osbuild runs it without its optional arguments): umask 022 whatever
// login.defs says, so the home and every directory in it are 0755; a file
// gets its mode from /etc/skel made writable by the owner and masked
// ((mode|0222)&^022); symlinks are copied; all owned by the user, the
// missing parents made 0755 for root. A home that exists, or that is not
// absolute, is left alone, as the helper leaves it.
func mkhomedir(acc accounts.Account) error {
	if !strings.HasPrefix(acc.Home, "/") {
		return nil
	}
	const umask = 0o022
	return copySkel(acc, 0o777&^umask, func(dir bool, st sdk.Stat) fs.FileMode {
		if dir {
			return 0o777 &^ umask
		}
		return permMode((st.RawMode&0o7777 | 0o222) &^ umask)
	})
}

// addKeys appends SSH public keys to ~/.ssh/authorized_keys, making the
// directory 0700 and the file 0600, both the user's, as sshd insists.
func addKeys(acc accounts.Account, keys []string) error {
	keys = slices.Clone(keys)
	for i, k := range keys {
		// A key pasted from a .pub file ends in a line break, which
		// osbuild accepts; the line is written once.
		k = strings.TrimSuffix(strings.TrimSuffix(k, "\n"), "\r")
		if strings.ContainsAny(k, "\n\r") || strings.TrimSpace(k) == "" {
			return fmt.Errorf("key %d is empty or spans lines", i)
		}
		keys[i] = k
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
