package accounts

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseTable: a table prints back as its text, with a final newline.
func FuzzParseTable(f *testing.F) {
	for _, s := range []string{passwd, group, shadow, gshadow, "", "\n", "\n\n", "a:b", "#x\n::::\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := ParseTable(text, true).String()
		want := text
		if want != "" && !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		if want == "\n" {
			want = ""
		}
		if got != want {
			t.Errorf("ParseTable(%q).String() = %q", text, got)
		}
	})
}

// FuzzAddUser: whatever the tree's account files and login.defs hold,
// adding a user and a group ends, and what it writes is one well-formed
// entry each, with ids in 0..2^32-2.
func FuzzAddUser(f *testing.F) {
	f.Add(passwd, group, defs, "SHELL=/bin/bash\nHOME=/home\n", false)
	f.Add(passwd, group, "UID_MIN 4294967294\nUID_MAX 9223372036854775807\nUSERGROUPS_ENAB yes\n", "", true)
	f.Add("a:x:9223372036854775807:0::/:/bin/sh\n", "g:x:4294967295:\n", "UID_MIN 9223372036854775806\nUID_MAX 9223372036854775807\nGID_MIN 9223372036854775807\nGID_MAX 9223372036854775807\n", "GROUP=-5", true)
	// Every id from UID_MIN to UID_MAX taken, at the top of int: the free-id
	// search wrapped around and never ended.
	f.Add("a:x:9223372036854775806:0::/:/bin/sh\nb:x:9223372036854775807:0::/:/bin/sh\n", "", "UID_MIN 9223372036854775806\nUID_MAX 9223372036854775807\n", "", false)
	f.Add("x:x:1000:1000\n", "x:x:1000:\n", "UID_MIN 2000\nUID_MAX 1000\nGID_MIN -1\nGID_MAX 0x10\n", "HOME=/h/\nINACTIVE=7", false)
	f.Add("", "", "UID_MIN 01750\nUID_MAX 01751\n", "GROUP=99999999999", true)
	f.Fuzz(func(t *testing.T, passwdText, groupText, defsText, useraddText string, force bool) {
		db := &DB{
			Passwd: ParseTable(passwdText, true), Group: ParseTable(groupText, true),
			Shadow: ParseTable("", true), Gshadow: ParseTable("", true),
			Defs: ParseDefs(defsText), Useradd: ParseDefs(useraddText), Today: 19723,
		}
		if _, err := db.AddGroup(Group{Name: "kilngroup", Force: force}); err == nil {
			checkLast(t, db.Group, "kilngroup", 4, 2)
		}
		acc, err := db.AddUser(User{Name: "kilnuser"})
		if err != nil || !acc.Created {
			return // an existing user is modified, its ids left as the tree has them
		}
		if acc.UID < 0 || acc.UID > MaxID || acc.GID < 0 || acc.GID > MaxID {
			t.Errorf("AddUser: uid %d gid %d", acc.UID, acc.GID)
		}
		f := checkLast(t, db.Passwd, "kilnuser", 7, 2, 3)
		if f != nil && (f[2] != strconv.Itoa(acc.UID) || f[3] != strconv.Itoa(acc.GID)) {
			t.Errorf("passwd entry %q for account %+v", f, acc)
		}
		checkLast(t, db.Shadow, "kilnuser", 9)
	})
}

// checkLast checks that the table's last entry is name's, with n fields
// and ids in the given columns in 0..2^32-2, and returns it.
func checkLast(t *testing.T, tab *Table, name string, n int, idCols ...int) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(tab.String(), "\n"), "\n")
	f := strings.Split(lines[len(lines)-1], ":")
	if len(f) != n || f[0] != name {
		t.Errorf("last entry %q, want %d fields for %s", f, n, name)
		return nil
	}
	for _, c := range idCols {
		id, err := strconv.ParseInt(f[c], 10, 64)
		if err != nil || id < 0 || id > MaxID {
			t.Errorf("entry %q: id %q is not in 0..%d", f, f[c], MaxID)
		}
	}
	return f
}
