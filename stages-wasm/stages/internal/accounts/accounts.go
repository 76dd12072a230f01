package accounts

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// DB is the four account files of a tree.
type DB struct {
	Passwd, Group, Shadow, Gshadow *Table
	Defs                           Defs // /etc/login.defs
	Useradd                        Defs // /etc/default/useradd
	// Today is the day number (days since 1970-01-01) useradd writes as
	// the last password change: SOURCE_DATE_EPOCH's day in kiln.
	Today int
}

// Group describes a group to add.
type Group struct {
	Name  string
	GID   *int
	Force bool // groupadd -f: an existing group is fine, a taken gid is replaced by a free one
}

// AddGroup adds a group as groupadd does. It reports whether a group was
// added (false when Force let an existing one stand).
func (db *DB) AddGroup(g Group) (bool, error) {
	if strings.ContainsAny(g.Name, ":\n\r\x00") || g.Name == "" {
		return false, fmt.Errorf("group %q: a group name is not empty and holds no ':', line break or NUL", g.Name)
	}
	if f, _ := db.Group.Find(g.Name, 4); f != nil {
		if g.Force {
			return false, nil
		}
		return false, fmt.Errorf("group %q already exists (gid %s)", g.Name, f[2])
	}
	used := db.Group.ids(2)
	var gid int
	if g.GID != nil {
		gid = *g.GID
		if !ValidID(gid) {
			return false, fmt.Errorf("group %q: gid %d is not in 0..%d", g.Name, gid, MaxID)
		}
		if other, taken := used[gid]; taken {
			if !g.Force {
				return false, fmt.Errorf("group %q: gid %d is taken by group %q", g.Name, gid, other)
			}
			var ok bool
			if gid, ok = nextID(used, db.Defs.Int("GID_MIN", 1000), db.Defs.Int("GID_MAX", 60000)); !ok {
				return false, fmt.Errorf("group %q: no free gid", g.Name)
			}
		}
	} else {
		var ok bool
		if gid, ok = nextID(used, db.Defs.Int("GID_MIN", 1000), db.Defs.Int("GID_MAX", 60000)); !ok {
			return false, fmt.Errorf("group %q: no free gid between GID_MIN and GID_MAX", g.Name)
		}
	}
	db.appendGroup(g.Name, gid)
	return true, nil
}

func (db *DB) appendGroup(name string, gid int) {
	db.Group.Append([]string{name, "x", strconv.Itoa(gid), ""})
	if db.Gshadow.Present {
		db.Gshadow.Append([]string{name, "!", "", ""})
	}
}

// User describes a user to add or modify; nil fields are not given.
type User struct {
	Name        string
	UID, GID    *int
	Groups      []string // supplementary groups; nil leaves them alone on modify
	Description *string
	Home        *string
	Shell       *string
	Password    *string // crypt(3) hash
	ExpireDate  *int    // days since 1970-01-01
}

// Account is the state of a user after AddUser or ModifyUser.
type Account struct {
	UID, GID int
	Home     string
	Created  bool // a new user: its home is to be made
}

// AddUser adds u as useradd does, or, when u exists, modifies it as
// usermod does; an existing user whose uid or gid differs from the ones
// asked for is an error, since renumbering would orphan its files.
func (db *DB) AddUser(u User) (Account, error) {
	if err := checkUser(u); err != nil {
		return Account{}, err
	}
	if f, i := db.Passwd.Find(u.Name, 7); f != nil {
		return db.modify(u, f, i)
	}
	uids := db.Passwd.ids(2)
	var uid int
	if u.UID != nil {
		uid = *u.UID
		if !ValidID(uid) {
			return Account{}, fmt.Errorf("user %q: uid %d is not in 0..%d", u.Name, uid, MaxID)
		}
		if other, taken := uids[uid]; taken {
			return Account{}, fmt.Errorf("user %q: uid %d is taken by user %q", u.Name, uid, other)
		}
	} else {
		var ok bool
		if uid, ok = nextID(uids, db.Defs.Int("UID_MIN", 1000), db.Defs.Int("UID_MAX", 60000)); !ok {
			return Account{}, fmt.Errorf("user %q: no free uid between UID_MIN and UID_MAX", u.Name)
		}
	}
	var gid int
	switch {
	case u.GID != nil:
		gid = *u.GID
		if !ValidID(gid) {
			return Account{}, fmt.Errorf("user %q: gid %d is not in 0..%d", u.Name, gid, MaxID)
		}
		if _, ok := db.Group.ids(2)[gid]; !ok {
			return Account{}, fmt.Errorf("user %q: group %d does not exist", u.Name, gid)
		}
	case db.Defs.Bool("USERGROUPS_ENAB", false): // unset is "no" to useradd
		if f, _ := db.Group.Find(u.Name, 4); f != nil {
			return Account{}, fmt.Errorf("user %q: a group of that name exists; give its gid to use it", u.Name)
		}
		// useradd gives the user's own group the uid's number when free.
		gids := db.Group.ids(2)
		gid = uid
		if _, taken := gids[gid]; taken {
			var ok bool
			if gid, ok = nextID(gids, db.Defs.Int("GID_MIN", 1000), db.Defs.Int("GID_MAX", 60000)); !ok {
				return Account{}, fmt.Errorf("user %q: no free gid for its group", u.Name)
			}
		}
		db.appendGroup(u.Name, gid)
	default:
		gid = db.Useradd.Int("GROUP", 100)
		if !ValidID(gid) {
			return Account{}, fmt.Errorf("user %q: GROUP=%s in /etc/default/useradd is not a gid in 0..%d", u.Name, db.Useradd["GROUP"], MaxID)
		}
	}
	if err := db.checkGroups(u); err != nil {
		return Account{}, err
	}
	home := deref(u.Home, strings.TrimSuffix(db.Useradd.Str("HOME", "/home"), "/")+"/"+u.Name)
	shell := deref(u.Shell, db.Useradd.Str("SHELL", "/bin/sh"))
	if err := checkFields(u.Name, map[string]string{"home": home, "shell": shell}); err != nil {
		return Account{}, err
	}
	db.Passwd.Append([]string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid),
		deref(u.Description, ""), home, shell})
	if db.Shadow.Present {
		expire := ""
		if u.ExpireDate != nil {
			expire = strconv.Itoa(*u.ExpireDate)
		}
		inactive := ""
		if n := db.Useradd.Int("INACTIVE", -1); n >= 0 {
			inactive = strconv.Itoa(n)
		}
		// useradd too: "better disable aging than requiring a password
		// change", which a last change on day 0 would mean.
		lastChange := strconv.Itoa(db.Today)
		if db.Today == 0 {
			lastChange = ""
		}
		db.Shadow.Append([]string{u.Name, deref(u.Password, "!"), lastChange,
			db.defStr("PASS_MIN_DAYS"), db.defStr("PASS_MAX_DAYS"), db.defStr("PASS_WARN_AGE"),
			inactive, expire, ""})
	}
	db.setGroups(u.Name, u.Groups)
	return Account{UID: uid, GID: gid, Home: home, Created: true}, nil
}

// defStr is a numeric login.defs value as useradd copies it into shadow:
// empty when unset.
func (db *DB) defStr(key string) string {
	if n := db.Defs.Int(key, -1); n >= 0 {
		return strconv.Itoa(n)
	}
	return ""
}

func (db *DB) modify(u User, f []string, i int) (Account, error) {
	if u.UID != nil && strconv.Itoa(*u.UID) != f[2] {
		return Account{}, fmt.Errorf("user %q already exists with uid %s, not %d", u.Name, f[2], *u.UID)
	}
	if u.GID != nil && strconv.Itoa(*u.GID) != f[3] {
		return Account{}, fmt.Errorf("user %q already exists with gid %s, not %d", u.Name, f[3], *u.GID)
	}
	if err := db.checkGroups(u); err != nil {
		return Account{}, err
	}
	f[4] = deref(u.Description, f[4])
	f[5] = deref(u.Home, f[5])
	f[6] = deref(u.Shell, f[6])
	db.Passwd.Set(i, f)
	if sf, si := db.Shadow.Find(u.Name, 9); sf != nil {
		if u.Password != nil {
			// usermod -p also sets the last change to today; a day 0
			// would force a change, so it writes none instead.
			sf[1], sf[2] = *u.Password, strconv.Itoa(db.Today)
			if db.Today == 0 {
				sf[2] = ""
			}
		}
		if u.ExpireDate != nil {
			sf[7] = strconv.Itoa(*u.ExpireDate)
		}
		db.Shadow.Set(si, sf)
	} else if u.Password != nil && db.Shadow.Present {
		return Account{}, fmt.Errorf("user %q has no entry in /etc/shadow to set the password in", u.Name)
	}
	if u.Groups != nil {
		db.setGroups(u.Name, u.Groups)
	}
	uid, _ := strconv.Atoi(f[2])
	gid, _ := strconv.Atoi(f[3])
	return Account{UID: uid, GID: gid, Home: f[5]}, nil
}

// checkUser refuses values that would break the colon-separated files:
// a ':' would add a field, a line break an entry.
func checkUser(u User) error {
	fields := map[string]string{"name": u.Name}
	for what, p := range map[string]*string{"description": u.Description, "home": u.Home, "shell": u.Shell, "password": u.Password} {
		if p != nil {
			fields[what] = *p
		}
	}
	for i, g := range u.Groups {
		fields[fmt.Sprintf("groups[%d]", i)] = g
	}
	return checkFields(u.Name, fields)
}

// checkFields refuses a value holding ':' or a line break; the values of
// the tree's /etc/default/useradd (HOME, SHELL) go through it too.
func checkFields(user string, fields map[string]string) error {
	for _, what := range slices.Sorted(maps.Keys(fields)) {
		if v := fields[what]; strings.ContainsAny(v, ":\n\r\x00") {
			return fmt.Errorf("user %q: %s %q holds a ':', a line break or a NUL, which would break the account files", user, what, v)
		}
	}
	return nil
}

func (db *DB) checkGroups(u User) error {
	for _, g := range u.Groups {
		if f, _ := db.Group.Find(g, 4); f == nil {
			return fmt.Errorf("user %q: supplementary group %q does not exist", u.Name, g)
		}
	}
	return nil
}

// setGroups makes user a member of exactly groups among the supplementary
// groups (usermod -G), in /etc/group and /etc/gshadow.
func (db *DB) setGroups(user string, groups []string) {
	for _, t := range []struct {
		tab *Table
		col int
	}{{db.Group, 3}, {db.Gshadow, 3}} {
		for i, l := range t.tab.lines {
			if strings.HasPrefix(l, "#") {
				continue
			}
			f := strings.Split(l, ":")
			for len(f) <= t.col {
				f = append(f, "")
			}
			var members []string
			if f[t.col] != "" {
				members = strings.Split(f[t.col], ",")
			}
			want := slices.Contains(groups, f[0])
			has := slices.Contains(members, user)
			switch {
			case want && !has:
				members = append(members, user)
			case !want && has:
				members = slices.DeleteFunc(members, func(m string) bool { return m == user })
			default:
				continue
			}
			f[t.col] = strings.Join(members, ",")
			t.tab.Set(i, f)
		}
	}
}

// ExpirePassword forces a password change at the next login (passwd -e):
// the last change is set to day 0.
func (db *DB) ExpirePassword(user string) error {
	f, i := db.Shadow.Find(user, 9)
	if f == nil {
		return fmt.Errorf("user %q has no entry in /etc/shadow", user)
	}
	f[2] = "0"
	db.Shadow.Set(i, f)
	return nil
}

// LookupUser returns the uid of a user name.
func (db *DB) LookupUser(name string) (int, bool) {
	f, _ := db.Passwd.Find(name, 7)
	if f == nil {
		return 0, false
	}
	id, err := strconv.Atoi(f[2])
	return id, err == nil
}

// LookupGroup returns the gid of a group name.
func (db *DB) LookupGroup(name string) (int, bool) {
	f, _ := db.Group.Find(name, 4)
	if f == nil {
		return 0, false
	}
	id, err := strconv.Atoi(f[2])
	return id, err == nil
}

// HomeMode is the mode useradd gives a new home: HOME_MODE, else 0777
// without UMASK.
func (db *DB) HomeMode() uint32 {
	umask := db.Defs.Int("UMASK", 0o022)
	return uint32(db.Defs.Int("HOME_MODE", 0o777&^umask)) & 0o7777
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
