package accounts

import (
	"strings"
	"testing"
)

const (
	passwd  = "root:x:0:0:root:/root:/bin/bash\n# a comment survives\nbin:x:1:1:bin:/bin:/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n"
	group   = "root:x:0:\nbin:x:1:\nwheel:x:10:alice\nalice:x:1000:\nusers:x:100:\n"
	shadow  = "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n"
	gshadow = "root:*::\nwheel:!::alice\nalice:!::\n"
	defs    = "# login.defs\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\nPASS_MAX_DAYS 99999\nPASS_MIN_DAYS 0\nPASS_WARN_AGE 7\nHOME_MODE 0700\nUSERGROUPS_ENAB yes\n"
)

func newDB() *DB {
	return &DB{
		Passwd:  ParseTable(passwd, true),
		Group:   ParseTable(group, true),
		Shadow:  ParseTable(shadow, true),
		Gshadow: ParseTable(gshadow, true),
		Defs:    ParseDefs(defs),
		Useradd: ParseDefs("SHELL=/bin/bash\nHOME=/home\n"),
		Today:   19723,
	}
}

func ptr[T any](v T) *T { return &v }

func TestAddUser(t *testing.T) {
	db := newDB()
	acc, err := db.AddUser(User{Name: "bob", Groups: []string{"wheel"}, Description: ptr("Bob")})
	if err != nil {
		t.Fatal(err)
	}
	if acc != (Account{UID: 1001, GID: 1001, Home: "/home/bob", Created: true}) {
		t.Errorf("account = %+v", acc)
	}
	checks := []struct {
		name, got, want string
	}{
		{"passwd", db.Passwd.String(), passwd + "bob:x:1001:1001:Bob:/home/bob:/bin/bash\n"},
		{"group", db.Group.String(), strings.Replace(group, "wheel:x:10:alice", "wheel:x:10:alice,bob", 1) + "bob:x:1001:\n"},
		{"shadow", db.Shadow.String(), shadow + "bob:!:19723:0:99999:7:::\n"},
		{"gshadow", db.Gshadow.String(), strings.Replace(gshadow, "::alice", "::alice,bob", 1) + "bob:!::\n"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, c.got, c.want)
		}
	}
	if db.HomeMode() != 0o700 {
		t.Errorf("HomeMode = %o", db.HomeMode())
	}
}

func TestAddUserIDs(t *testing.T) {
	tests := []struct {
		name    string
		user    User
		want    Account
		wantErr string
	}{
		{name: "explicit uid gets own group of same number", user: User{Name: "c", UID: ptr(2000)}, want: Account{UID: 2000, GID: 2000, Home: "/home/c", Created: true}},
		{name: "explicit gid", user: User{Name: "c", GID: ptr(100)}, want: Account{UID: 1001, GID: 100, Home: "/home/c", Created: true}},
		{name: "uid taken", user: User{Name: "c", UID: ptr(1000)}, wantErr: `uid 1000 is taken by user "alice"`},
		{name: "missing gid", user: User{Name: "c", GID: ptr(4242)}, wantErr: "group 4242 does not exist"},
		{name: "missing group", user: User{Name: "c", Groups: []string{"nope"}}, wantErr: `group "nope" does not exist`},
		{name: "existing with other uid", user: User{Name: "alice", UID: ptr(1005)}, wantErr: `user "alice" already exists with uid 1000, not 1005`},
		{name: "existing same uid modifies", user: User{Name: "alice", UID: ptr(1000), Shell: ptr("/bin/zsh")}, want: Account{UID: 1000, GID: 1000, Home: "/home/alice"}},
		{name: "group named like user", user: User{Name: "users"}, wantErr: "a group of that name exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB()
			got, err := db.AddUser(tt.user)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("AddUser = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestModifyUser(t *testing.T) {
	db := newDB()
	if _, err := db.AddUser(User{Name: "alice", Password: ptr("$6$x"), Groups: []string{}, ExpireDate: ptr(20000)}); err != nil {
		t.Fatal(err)
	}
	if err := db.ExpirePassword("alice"); err != nil {
		t.Fatal(err)
	}
	if got := db.Shadow.String(); !strings.Contains(got, "alice:$6$x:0:0:99999:7::20000:\n") {
		t.Errorf("shadow = %q", got)
	}
	if got := db.Group.String(); !strings.Contains(got, "wheel:x:10:\n") {
		t.Errorf("alice still in wheel: %q", got)
	}
	if db.Passwd.Changed() {
		t.Error("passwd changed although no passwd field was given")
	}
}

// Without USERGROUPS_ENAB in login.defs useradd makes no group of the
// user's own: the user's group is GROUP of /etc/default/useradd (100).
func TestAddUserNoUsergroups(t *testing.T) {
	db := newDB()
	db.Defs = ParseDefs(strings.Replace(defs, "USERGROUPS_ENAB yes\n", "", 1))
	acc, err := db.AddUser(User{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if acc.GID != 100 || db.Group.Changed() {
		t.Errorf("account = %+v, group file changed %v; want gid 100 and no new group", acc, db.Group.Changed())
	}
}

// usermod -p sets the last password change to today.
func TestModifyPasswordSetsLastChange(t *testing.T) {
	db := newDB()
	if _, err := db.AddUser(User{Name: "alice", Password: ptr("$6$new")}); err != nil {
		t.Fatal(err)
	}
	if got := db.Shadow.String(); !strings.Contains(got, "alice:$6$new:19723:0:99999:7:::\n") {
		t.Errorf("shadow = %q", got)
	}
}

// TestDayZeroDisablesAging: with SOURCE_DATE_EPOCH 0 (kiln's default) a
// last change on day 0 would force a password change at the first login;
// useradd and usermod write none instead.
func TestDayZeroDisablesAging(t *testing.T) {
	db := newDB()
	db.Today = 0
	if _, err := db.AddUser(User{Name: "bob", Password: ptr("$6$x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddUser(User{Name: "alice", Password: ptr("$6$new")}); err != nil {
		t.Fatal(err)
	}
	got := db.Shadow.String()
	for _, want := range []string{"bob:$6$x::", "alice:$6$new::"} {
		if !strings.Contains(got, want) {
			t.Errorf("shadow lacks %q:\n%s", want, got)
		}
	}
}

func TestAddGroup(t *testing.T) {
	tests := []struct {
		name    string
		g       Group
		added   bool
		line    string
		wantErr string
	}{
		{name: "next gid", g: Group{Name: "dev"}, added: true, line: "dev:x:1001:"},
		{name: "given gid", g: Group{Name: "dev", GID: ptr(500)}, added: true, line: "dev:x:500:"},
		{name: "exists", g: Group{Name: "wheel"}, wantErr: `group "wheel" already exists`},
		{name: "exists forced", g: Group{Name: "wheel", Force: true}},
		{name: "gid taken", g: Group{Name: "dev", GID: ptr(10)}, wantErr: `gid 10 is taken by group "wheel"`},
		{name: "gid taken forced", g: Group{Name: "dev", GID: ptr(10), Force: true}, added: true, line: "dev:x:1001:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB()
			added, err := db.AddGroup(tt.g)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || added != tt.added {
				t.Fatalf("AddGroup = %v, %v", added, err)
			}
			if tt.line != "" && !strings.HasSuffix(db.Group.String(), tt.line+"\n") {
				t.Errorf("group file ends %q, want %q", db.Group.String(), tt.line)
			}
		})
	}
}

func TestNextID(t *testing.T) {
	used := map[int]string{0: "root", 1000: "a", 1001: "b", 60000: "top"}
	if id, _ := nextID(used, 1000, 60000); id != 1002 {
		t.Errorf("with max taken, nextID = %d, want the lowest free 1002", id)
	}
	if id, _ := nextID(map[int]string{5: "x"}, 1000, 60000); id != 1000 {
		t.Errorf("empty range: nextID = %d, want 1000", id)
	}
	if _, ok := nextID(map[int]string{1: "a", 2: "b"}, 1, 2); ok {
		t.Error("full range: nextID found an id")
	}
}

func TestParseDefs(t *testing.T) {
	d := ParseDefs("UMASK\t077\nHOME_MODE 0750\nSHELL=\"/bin/zsh\"\n#X 1\n")
	if d.Int("UMASK", 0) != 0o77 || d.Int("HOME_MODE", 0) != 0o750 || d.Str("SHELL", "") != "/bin/zsh" || d.Str("X", "none") != "none" {
		t.Errorf("ParseDefs = %v", d)
	}
}

// TestSubIDRanges: a new user gets the lowest free range of subordinate
// ids, the file sorted as shadow-utils writes it; a uid given outside
// UID_MIN..UID_MAX gets none unless it is 0; a full range is an error.
func TestSubIDRanges(t *testing.T) {
	for _, tt := range []struct {
		name, subuid string
		uid          *int
		defs         string
		want         string
		wantErr      string
	}{
		{name: "gap", subuid: "a:100000:65536\nz:300000:65536\n", want: "a:100000:65536\nz:300000:65536\nbob:165536:65536\n"},
		{name: "sorted", subuid: "z:300000:65536\na:100000:65536\n", want: "a:100000:65536\nz:300000:65536\nbob:165536:65536\n"},
		{name: "overlapping", subuid: "a:100000:70000\nb:150000:10000\n", want: "a:100000:70000\nb:150000:10000\nbob:170000:65536\n"},
		{name: "system-uid", subuid: "", uid: ptr(500), want: ""},
		{name: "uid-0", subuid: "", uid: ptr(0), want: "bob:100000:65536\n"},
		{name: "full", subuid: "a:100000:10\n", defs: "SUB_UID_MAX 100100\n", wantErr: "no free range"},
		{name: "count-0", subuid: "", defs: "SUB_UID_COUNT 0\n", want: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB()
			db.Defs = ParseDefs(defs + tt.defs)
			db.SubUID = ParseTable(tt.subuid, true)
			_, err := db.AddUser(User{Name: "bob", UID: tt.uid, NonUnique: true})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := db.SubUID.String(); got != tt.want {
				t.Errorf("subuid = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMailbox: CREATE_MAIL_SPOOL=yes gives a new user MAIL_DIR/NAME, in
// group mail 0660 or its own group 0600 without one.
func TestMailbox(t *testing.T) {
	db := newDB()
	db.Defs = ParseDefs(defs + "MAIL_DIR /var/spool/mail\n")
	db.Useradd = ParseDefs("CREATE_MAIL_SPOOL=yes\n")
	acc, err := db.AddUser(User{Name: "bob"})
	if err != nil || acc.Mail == nil || *acc.Mail != (Mail{Path: "/var/spool/mail/bob", UID: 1001, GID: 1001, Mode: 0o600}) {
		t.Fatalf("mail = %+v, %v", acc.Mail, err)
	}
	db.Group.Append([]string{"mail", "x", "12", ""})
	acc, err = db.AddUser(User{Name: "carl"})
	if err != nil || acc.Mail == nil || *acc.Mail != (Mail{Path: "/var/spool/mail/carl", UID: 1002, GID: 12, Mode: 0o660}) {
		t.Fatalf("mail = %+v, %v", acc.Mail, err)
	}
	db.Useradd = ParseDefs("")
	if acc, err := db.AddUser(User{Name: "dora"}); err != nil || acc.Mail != nil {
		t.Fatalf("mail without CREATE_MAIL_SPOOL = %+v, %v", acc.Mail, err)
	}
}
