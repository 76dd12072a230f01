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
	SubUID, SubGID                 *Table // /etc/subuid, /etc/subgid; nil or not Present: none
	Defs                           Defs   // /etc/login.defs
	Useradd                        Defs   // /etc/default/useradd
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
	// NonUnique lets a new user share a uid another user has (useradd
	// -o), as osbuild's stage always asks with --uid: the installer
	// image's second uid-0 user is made so.
	NonUnique bool
}

// Account is the state of a user after AddUser or ModifyUser.
type Account struct {
	UID, GID int
	Home     string
	Created  bool  // a new user: its home is to be made
	Mail     *Mail // the mailbox useradd makes, if it makes one
}

// Mail is a new user's empty mailbox, as useradd makes it when
// /etc/default/useradd says CREATE_MAIL_SPOOL=yes: MAIL_DIR/NAME, the
// user's, in group mail with 0660, or the user's group with 0600 when
// there is no group mail.
type Mail struct {
	Path     string
	UID, GID int
	Mode     uint32
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
		if other, taken := uids[uid]; taken && !u.NonUnique {
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
		// useradd gives the user's own group the uid's number when it is
		// free and in GID_MIN..GID_MAX (find_new_gid's preferred gid).
		gids := db.Group.ids(2)
		gid = uid
		_, taken := gids[gid]
		if taken || gid < db.Defs.Int("GID_MIN", 1000) || gid > db.Defs.Int("GID_MAX", 60000) {
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
	if err := db.addSubIDs(u.Name, uid, u.UID != nil); err != nil {
		return Account{}, err
	}
	acc := Account{UID: uid, GID: gid, Home: home, Created: true}
	if db.Useradd.Bool("CREATE_MAIL_SPOOL", false) {
		// useradd 4.13 without MAIL_DIR looks at MAIL_FILE (a mailbox
		// in the home, which it does not make) and else uses /var/mail.
		spool, ok := db.Defs["MAIL_DIR"]
		if _, inHome := db.Defs["MAIL_FILE"]; !ok && !inHome {
			spool, ok = "/var/mail", true
		}
		if ok && strings.HasPrefix(spool, "/") && !strings.ContainsAny(spool, "\x00") {
			m := &Mail{Path: strings.TrimSuffix(spool, "/") + "/" + u.Name, UID: uid, GID: gid, Mode: 0o600}
			if mg, found := db.LookupGroup("mail"); found {
				m.GID, m.Mode = mg, 0o660
			}
			acc.Mail = m
		}
	}
	return acc, nil
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

// addSubIDs gives a new user ranges in /etc/subuid and /etc/subgid as
// useradd 4.13 does: only when the file is in the tree and
// SUB_UID_COUNT (SUB_GID_COUNT) is not 0, for a uid in UID_MIN..UID_MAX or
// one useradd chose itself (a uid given outside the range gets none), the
// lowest free range of that size from SUB_UID_MIN up to SUB_UID_MAX.
func (db *DB) addSubIDs(name string, uid int, given bool) error {
	// useradd tests "no uid given" as uid 0, so a given uid 0 (the
	// installer's second root) gets ranges too.
	if given && uid != 0 && (uid < db.Defs.Int("UID_MIN", 1000) || uid > db.Defs.Int("UID_MAX", 60000)) {
		return nil
	}
	for _, s := range []struct {
		tab  *Table
		kind string
	}{{db.SubUID, "UID"}, {db.SubGID, "GID"}} {
		if s.tab == nil || !s.tab.Present {
			continue
		}
		count := clampID(db.Defs.Int("SUB_"+s.kind+"_COUNT", 65536))
		if count <= 0 {
			continue
		}
		if f, _ := s.tab.Find(name, 3); f != nil {
			continue // useradd leaves an entry the user already has
		}
		lo, hi := clampID(db.Defs.Int("SUB_"+s.kind+"_MIN", 100000)), clampID(db.Defs.Int("SUB_"+s.kind+"_MAX", 600100000))
		s.tab.sortRanges()
		start, ok := s.tab.freeRange(lo, hi, count)
		if !ok {
			return fmt.Errorf("user %q: no free range of %d subordinate %ss in %d..%d", name, count, strings.ToLower(s.kind), lo, hi)
		}
		s.tab.Append([]string{name, strconv.Itoa(start), strconv.Itoa(count)})
	}
	return nil
}

// freeRange is the lowest start in lo..hi of count ids that overlap no
// range of the subordinate id file.
func (t *Table) freeRange(lo, hi, count int) (int, bool) {
	type span struct{ start, end int } // end exclusive
	var used []span
	for _, l := range t.lines {
		f := strings.Split(l, ":")
		if strings.HasPrefix(l, "#") || len(f) < 3 {
			continue
		}
		s, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || n <= 0 {
			continue
		}
		used = append(used, span{s, s + n})
	}
	slices.SortFunc(used, func(a, b span) int { return a.start - b.start })
	start := lo
	for _, u := range used {
		if u.start >= start+count {
			break
		}
		start = max(start, u.end)
	}
	return start, start+count-1 <= hi
}

// sortRanges orders the entries of a subordinate id file by their first
// id, as shadow-utils sorts the file before it looks for a free range (and
// so writes it sorted, the new entry last). Lines that are no entry keep
// their places.
func (t *Table) sortRanges() {
	type entry struct {
		start int
		line  string
	}
	var slots []int
	var entries []entry
	for i, l := range t.lines {
		f := strings.Split(l, ":")
		if strings.HasPrefix(l, "#") || len(f) < 3 {
			continue
		}
		s, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		slots, entries = append(slots, i), append(entries, entry{s, l})
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return a.start - b.start })
	for k, i := range slots {
		if t.lines[i] != entries[k].line {
			t.lines[i], t.changed = entries[k].line, true
		}
	}
}
