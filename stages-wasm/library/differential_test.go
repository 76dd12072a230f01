package library

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// The differential tests build one starting tree twice, change one copy
// with the real tool (shadow-utils' groupadd/useradd/usermod with --root,
// systemctl --root), the other with kiln's stage, and compare the whole
// trees: every file's content, mode and owner, every symlink's target.
// Agreed differences are listed in docs/stages.md; diffIgnored holds the
// paths the tools write that kiln deliberately does not.

// diffCase is one scenario. The commands run in order with "{root}"
// replaced by the tree, as osbuild's stage would run them; either all
// of them and the stage succeed, or the first failing command and the
// stage both fail.
type diffCase struct {
	name    string
	tree    string // tree.txt lines
	stage   string
	options string
	tool    [][]string
}

// diffIgnored reports paths a real tool leaves that kiln does not make on
// purpose: shadow-utils' backup copies (/etc/passwd- ...) and the lock
// file lckpwdf(3) leaves.
func diffIgnored(p string) bool {
	switch p {
	case "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/subuid-", "/etc/subgid-", "/etc/.pwd.lock":
		return true
	}
	return false
}

// accountsTree is a small Fedora-like base: system accounts, a user 1000,
// login.defs as Fedora ships it (CREATE_HOME yes, as osbuild relies on)
// and a skeleton with files of several modes, directories and a symlink
// (useradd copies the modes, mkhomedir_helper masks them).
const accountsTree = `
/etc dir 0755 0:0
/etc/passwd file 0644 0:0 "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n"
/etc/group file 0644 0:0 "root:x:0:\nbin:x:1:\nwheel:x:10:\nusers:x:100:\nalice:x:1000:\n"
/etc/shadow file 0000 0:0 "root:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n"
/etc/gshadow file 0000 0:0 "root:::\nbin:::\nwheel:::\nusers:::\nalice:!::\n"
/etc/default dir 0755 0:0
/etc/default/useradd file 0644 0:0 "SHELL=/bin/bash\n"
/etc/skel dir 0755 0:0
/etc/skel/.bashrc file 0644 0:0 "# bashrc\n"
/etc/skel/.profile file 0600 0:0 "# profile\n"
/etc/skel/.config dir 0755 0:0
/etc/skel/.config/app file 0644 0:0 "x=1\n"
/etc/skel/.link symlink -> .bashrc
/etc/skel/.shared file 0664 0:0 "group-writable\n"
/etc/skel/.config/run file 0775 0:0 "#!/bin/sh\n"
/etc/skel/.private dir 0700 0:0
/home dir 0755 0:0
/home/alice dir 0700 1000:1000
`

// fedoraDefs is the part of Fedora's login.defs that useradd reads.
const fedoraDefs = `/etc/login.defs file 0644 0:0 "MAIL_DIR /var/spool/mail\nUMASK 022\nHOME_MODE 0700\nPASS_MAX_DAYS 99999\nPASS_MIN_DAYS 0\nPASS_WARN_AGE 7\nUID_MIN 1000\nUID_MAX 60000\nSYS_UID_MIN 201\nSYS_UID_MAX 999\nGID_MIN 1000\nGID_MAX 60000\nSYS_GID_MIN 201\nSYS_GID_MAX 999\nCREATE_HOME yes\nUSERGROUPS_ENAB yes\nENCRYPT_METHOD SHA512\n"
`

// debianDefs is what Debian 12's login.defs sets that useradd reads.
const debianDefs = `/etc/login.defs file 0644 0:0 "MAIL_DIR /var/mail\nPASS_MAX_DAYS 99999\nPASS_MIN_DAYS 0\nPASS_WARN_AGE 7\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\nUMASK 022\nUSERGROUPS_ENAB yes\nENCRYPT_METHOD SHA512\n"`

// mailSpool asks useradd for mailboxes in /var/spool/mail (fedoraDefs'
// MAIL_DIR), a directory of group mail as Fedora has it.
const mailSpool = `/etc/default/useradd file 0644 0:0 "SHELL=/bin/bash\nCREATE_MAIL_SPOOL=yes\n"
/var dir 0755 0:0
/var/spool dir 0755 0:0
/var/spool/mail dir 0775 0:12`

// subIDs has a subuid file with alice's range and a gap after it, and an
// empty subgid file.
const subIDs = `/etc/subuid file 0644 0:0 "alice:100000:65536\nzed:300000:65536\n"
/etc/subgid file 0644 0:0 ""`

func accounts(extra ...string) string {
	return accountsTree + fedoraDefs + strings.Join(extra, "\n")
}

// useradd is the command osbuild's users stage runs for a new user.
func useradd(args ...string) []string {
	return append([]string{"useradd", "--root", "{root}"}, args...)
}

// mkhomedirHelper is osbuild's ensure_homedir: mkhomedir_helper USER
// run in the tree. The host's helper runs with the tree's /etc (passwd,
// skel) and the home's parent directory of the tree bound over the host's,
// in the mount namespace runTool gives each command.
func mkhomedirHelper(user string, parent string) []string {
	return []string{"sh", "-c", `set -e; mount --bind "$0/etc" /etc; mount --bind "$0$1" "$1"; exec mkhomedir_helper "$2"`, "{root}", parent, user}
}

// addKey is what osbuild's users stage does for a key: ~/.ssh made 0700
// for the user if missing, the key appended, authorized_keys the user's
// and 0600.
func addKey(home, owner, key string) []string {
	ssh := "{root}" + home + "/.ssh"
	return []string{"sh", "-c", fmt.Sprintf(
		"set -e; if [ ! -e %[1]s ]; then mkdir -m 0700 %[1]s; chown %[2]s %[1]s; fi; printf '%%s\\n' '%[3]s' >> %[1]s/authorized_keys; chown %[2]s %[1]s/authorized_keys; chmod 0600 %[1]s/authorized_keys",
		ssh, owner, key)}
}

var accountCases = []diffCase{
	{name: "group", tree: accounts(), stage: "org.osbuild.groups",
		options: `{"groups": {"devs": {}}}`,
		tool:    [][]string{{"groupadd", "--root", "{root}", "devs"}}},
	{name: "group-gid", tree: accounts(), stage: "org.osbuild.groups",
		options: `{"groups": {"devs": {"gid": 2000}}}`,
		tool:    [][]string{{"groupadd", "--root", "{root}", "--gid", "2000", "devs"}}},
	{name: "group-system-gid", tree: accounts(), stage: "org.osbuild.groups",
		options: `{"groups": {"svc": {"gid": 980}}}`,
		tool:    [][]string{{"groupadd", "--root", "{root}", "--gid", "980", "svc"}}},
	{name: "group-sparse", tree: accounts(`/etc/group file 0644 0:0 "root:x:0:\nalice:x:1000:\nold:x:1002:\n"`), stage: "org.osbuild.groups",
		options: `{"groups": {"devs": {}}}`,
		tool:    [][]string{{"groupadd", "--root", "{root}", "devs"}}},
	{name: "group-exists", tree: accounts(), stage: "org.osbuild.groups",
		options: `{"groups": {"wheel": {}}}`,
		tool:    [][]string{{"groupadd", "--root", "{root}", "wheel"}}},
	{name: "group-gid-taken", tree: accounts(), stage: "org.osbuild.groups",
		options: `{"groups": {"devs": {"gid": 10}}}`,
		tool:    [][]string{{"groupadd", "--root", "{root}", "--gid", "10", "devs"}}},
	{name: "group-login-defs", tree: accounts(`/etc/login.defs file 0644 0:0 "GID_MIN 5000\nGID_MAX 6000\n"`), stage: "org.osbuild.groups",
		options: `{"groups": {"devs": {}}}`,
		tool:    [][]string{{"groupadd", "--root", "{root}", "devs"}}},

	{name: "user", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	{name: "user-uid", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"uid": 1500}}}`,
		tool:    [][]string{useradd("--uid", "1500", "-o", "bob")}},
	{name: "user-gid", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"gid": 100}}}`,
		tool:    [][]string{useradd("--gid", "100", "bob")}},
	{name: "user-groups", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"groups": ["wheel", "users"]}}}`,
		tool:    [][]string{useradd("--groups", "wheel,users", "bob")}},
	{name: "user-home-shell-description", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"home": "/srv/bob", "shell": "/bin/zsh", "description": "Bob B", "password": "$6$salt$hash"}}}`,
		tool:    [][]string{useradd("--comment", "Bob B", "--home-dir", "/srv/bob", "--shell", "/bin/zsh", "--password", "$6$salt$hash", "bob")}},
	{name: "user-group-name-taken", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"wheel": {}}}`,
		tool:    [][]string{useradd("wheel")}},
	// osbuild passes -o with every --uid: a taken uid is shared.
	{name: "user-uid-taken", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"uid": 1000}}}`,
		tool:    [][]string{useradd("--uid", "1000", "-o", "bob")}},
	// The installer image's second root (issue 11 item 13): uid 0 with
	// -o, gid 0, root's existing home, an empty password.
	{name: "user-uid-0-installer", tree: accounts("/root dir 0550 0:0"), stage: "org.osbuild.users",
		options: `{"users": {"install": {"uid": 0, "gid": 0, "home": "/root", "shell": "/bin/sh", "password": ""}}}`,
		tool: [][]string{useradd("--uid", "0", "-o", "--gid", "0", "--home-dir", "/root", "--create-home",
			"--shell", "/bin/sh", "--password", "", "install")}},
	{name: "user-uid-0-existing", tree: accounts("/root dir 0550 0:0"), stage: "org.osbuild.users",
		options: `{"users": {"root": {"uid": 0, "password": "$6$r$h"}}}`,
		tool:    [][]string{{"usermod", "--root", "{root}", "--password", "$6$r$h", "root"}}},
	{name: "user-uid-other-existing", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"uid": 0}}}`,
		tool:    [][]string{{"false"}}}, // osbuild: "can't set uid of existing user"
	// home "" is useradd --no-create-home: the default home in passwd,
	// no directory.
	{name: "user-home-empty", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"home": ""}}}`,
		tool:    [][]string{useradd("--no-create-home", "bob")}},
	{name: "user-sparse-ids", tree: accounts(
		`/etc/passwd file 0644 0:0 "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\ncarol:x:1002:1002::/home/carol:/bin/bash\n"`,
		`/etc/group file 0644 0:0 "root:x:0:\nwheel:x:10:\nalice:x:1000:\ncarol:x:1002:\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	{name: "user-gid-of-uid-taken", tree: accounts(
		`/etc/group file 0644 0:0 "root:x:0:\nwheel:x:10:\nalice:x:1000:\nproj:x:1001:\nproj2:x:1005:\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	{name: "user-login-defs", tree: accounts(
		`/etc/login.defs file 0644 0:0 "UID_MIN 5000\nUID_MAX 6000\nGID_MIN 7000\nGID_MAX 8000\nCREATE_HOME yes\nUMASK 077\nPASS_MAX_DAYS 90\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	{name: "user-no-usergroups", tree: accounts(
		`/etc/login.defs file 0644 0:0 "USERGROUPS_ENAB no\nCREATE_HOME yes\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	// Debian's login.defs has no CREATE_HOME: useradd makes no home there,
	// kiln makes it as useradd -m does (docs/stages.md).
	{name: "user-debian-defs", tree: accounts(debianDefs), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"groups": ["users"]}}}`,
		tool:    [][]string{useradd("-m", "--groups", "users", "bob")}},
	{name: "user-no-login-defs", tree: accountsTree, stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("-m", "bob")}},
	{name: "user-no-usergroups-no-group-100", tree: accounts(
		`/etc/login.defs file 0644 0:0 "CREATE_HOME yes\n"`,
		`/etc/group file 0644 0:0 "root:x:0:\nwheel:x:10:\nalice:x:1000:\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	{name: "user-two", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}, "carl": {"uid": 1001}}}`,
		tool:    [][]string{useradd("bob"), useradd("--uid", "1001", "-o", "carl")}},
	{name: "user-key", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"key": "ssh-ed25519 AAAA bob@a"}}}`,
		tool:    [][]string{useradd("bob"), addKey("/home/bob", "1001:1001", "ssh-ed25519 AAAA bob@a")}},
	{name: "modify", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"groups": ["wheel"], "description": "Alice A", "shell": "/bin/zsh", "password": "$6$x$y"}}}`,
		tool: [][]string{{"usermod", "--root", "{root}", "--groups", "wheel", "--comment", "Alice A",
			"--shell", "/bin/zsh", "--password", "$6$x$y", "alice"}}},
	// osbuild runs mkhomedir_helper in the tree for an existing user
	// whose home is missing (issue 11 item 13).
	{name: "modify-home", tree: accounts("/srv dir 0755 0:0"), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"home": "/srv/alice"}}}`,
		tool:    [][]string{{"usermod", "--root", "{root}", "--home", "/srv/alice", "alice"}, mkhomedirHelper("alice", "/srv")}},
	// osbuild's test moves root's home to /var/roothome. Debian's
	// usermod 4.13 refuses to change root's home under --root (it counts
	// itself as root's process), so the tree has the new home in passwd
	// already and the stage's usermod is a no-op; mkhomedir_helper makes it.
	{name: "modify-root-home", tree: accounts("/root dir 0550 0:0", "/var dir 0755 0:0",
		`/etc/passwd file 0644 0:0 "root:x:0:0:root:/var/roothome:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n"`), stage: "org.osbuild.users",
		options: `{"users": {"root": {"home": "/var/roothome"}}}`,
		tool:    [][]string{mkhomedirHelper("root", "/var")}},
	{name: "modify-home-missing", tree: accounts(
		`/etc/passwd file 0644 0:0 "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice2:/bin/bash\n"`), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"home": ""}}}`,
		tool:    [][]string{mkhomedirHelper("alice", "/home")}},
	{name: "modify-home-exists", tree: accounts("/srv dir 0755 0:0", "/srv/alice dir 0750 1000:1000"), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"home": "/srv/alice"}}}`,
		tool:    [][]string{{"usermod", "--root", "{root}", "--home", "/srv/alice", "alice"}, mkhomedirHelper("alice", "/srv")}},
	// useradd's mailbox (CREATE_MAIL_SPOOL) and subordinate ids, which
	// osbuild's users test shows in its tree difference.
	{name: "user-mail-spool", tree: accounts(mailSpool, `/etc/group file 0644 0:0 "root:x:0:\nmail:x:12:\nalice:x:1000:\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}, "nohome": {"home": ""}}}`,
		tool:    [][]string{useradd("bob"), useradd("--no-create-home", "nohome")}},
	{name: "user-mail-spool-no-mail-group", tree: accounts(mailSpool), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	{name: "user-mail-spool-missing-dir", tree: accounts(`/etc/default/useradd file 0644 0:0 "SHELL=/bin/bash\nCREATE_MAIL_SPOOL=yes\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	{name: "user-subids", tree: accounts(subIDs), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}, "carl": {"uid": 1500}}}`,
		tool:    [][]string{useradd("bob"), useradd("--uid", "1500", "-o", "carl")}},
	{name: "user-subids-uid-outside-range", tree: accounts(subIDs), stage: "org.osbuild.users",
		options: `{"users": {"svc": {"uid": 500}}}`,
		tool:    [][]string{useradd("--uid", "500", "-o", "svc")}},
	{name: "user-subids-uid-0", tree: accounts(subIDs, "/root dir 0550 0:0"), stage: "org.osbuild.users",
		options: `{"users": {"install": {"uid": 0, "gid": 0, "home": "/root"}}}`,
		tool:    [][]string{useradd("--uid", "0", "-o", "--gid", "0", "--home-dir", "/root", "--create-home", "install")}},
	{name: "user-subids-login-defs", tree: accounts(subIDs,
		`/etc/login.defs file 0644 0:0 "CREATE_HOME yes\nUSERGROUPS_ENAB yes\nSUB_UID_MIN 5000\nSUB_UID_COUNT 1000\nSUB_GID_COUNT 0\n"`), stage: "org.osbuild.users",
		options: `{"users": {"bob": {}}}`,
		tool:    [][]string{useradd("bob")}},
	// osbuild appends the key after the keys.
	{name: "user-keys-then-key", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"key": "ssh-ed25519 K0 k0", "keys": ["ssh-ed25519 K1 k1", "ssh-ed25519 K2 k2"]}}}`,
		tool:    [][]string{useradd("bob"), addKey("/home/bob", "1001:1001", "ssh-ed25519 K1 k1\nssh-ed25519 K2 k2\nssh-ed25519 K0 k0")}},
	// A key pasted with its line break: osbuild writes it and then a
	// blank line; kiln writes the line once (docs/stages.md).
	{name: "user-key-trailing-newline", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"key": "ssh-ed25519 AAAA bob@a\n"}}}`,
		tool:    [][]string{useradd("bob"), addKey("/home/bob", "1001:1001", "ssh-ed25519 AAAA bob@a")}},
	{name: "modify-key", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"key": "ssh-rsa BBBB alice@b"}}}`,
		tool:    [][]string{addKey("/home/alice", "1000:1000", "ssh-rsa BBBB alice@b")}},
}

// TestDifferentialAccounts compares the groups and users stages with
// shadow-utils' groupadd, useradd and usermod.
func TestDifferentialAccounts(t *testing.T) {
	needTools(t, "useradd", "groupadd", "usermod", "mkhomedir_helper", "unshare")
	runDiffCases(t, accountCases)
}

// needTools skips the test unless it runs as root (the tools chown and
// write account files) and every tool is installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the real tools write account files and chown homes: run as root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian package %s); it is what the stage is compared with", tool, debPackage[tool])
		}
	}
}

var debPackage = map[string]string{"mkhomedir_helper": "libpam-modules-bin", "useradd": "passwd", "groupadd": "passwd", "usermod": "passwd", "systemctl": "systemd", "unshare": "util-linux"}

func runDiffCases(t *testing.T, cases []diffCase) {
	stages, _ := builtLibrary(t)
	e := newEngine(t)
	mods := map[string]*engine.Module{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, ok := stages[c.stage]
			if !ok {
				t.Fatalf("no stage %s in the library", c.stage)
			}
			if mods[c.stage] == nil {
				mods[c.stage] = engine.NewModule(st.Module)
			}
			if err := validate(st, []byte(c.options)); err != nil {
				t.Fatalf("options: %v", err)
			}
			toolRoot, kilnRoot := diffTree(t, c.tree), diffTree(t, c.tree)
			before, err := describeTree(toolRoot)
			if err != nil {
				t.Fatal(err)
			}

			toolErr := runTool(toolRoot, c.tool)
			id := sha256.Sum256([]byte("differential\x00" + c.name))
			res, kilnErr := e.Run(context.Background(), engine.Invocation{
				Name: c.stage, ID: hex.EncodeToString(id[:]), Module: mods[c.stage],
				Options: []byte(c.options), Tree: kilnRoot, Epoch: goldenEpoch,
			})
			switch {
			case toolErr != nil && kilnErr != nil:
				return // both refuse
			case toolErr != nil:
				t.Fatalf("the tool failed, the stage succeeded:\n%v", toolErr)
			case kilnErr != nil:
				t.Fatalf("the tool succeeded, the stage failed: %v\nlog:\n%s", kilnErr, res.Log)
			}
			toolAfter, err := describeTree(toolRoot)
			if err != nil {
				t.Fatal(err)
			}
			kilnAfter, err := describeTree(kilnRoot)
			if err != nil {
				t.Fatal(err)
			}
			toolChanged := diffTrees(before, toolAfter)
			for p := range kilnAfter {
				if diffIgnored(p) { // groups writes backups: differential_groups_test.go compares them
					delete(kilnAfter, p)
				}
			}
			for p, desc := range toolAfter {
				if diffIgnored(p) {
					delete(toolAfter, p)
					continue
				}
				// A symlink written another way to the same file is the
				// same link: /lib/... and /usr/lib/... on merged /usr.
				if k, ok := kilnAfter[p]; ok && k != desc && strings.HasPrefix(k, "symlink") && strings.HasPrefix(desc, "symlink") &&
					resolveIn(toolRoot, p) == resolveIn(kilnRoot, p) {
					toolAfter[p] = k
				}
			}
			if d := diffTrees(toolAfter, kilnAfter); d != "" {
				t.Errorf("kiln's tree differs from the tool's (+ only kiln, - only the tool, ~ kiln's version):\n%s\nthe tool changed:\n%s",
					d, toolChanged)
			}
		})
	}
}

// resolveIn follows the symlinks of path p inside the tree root, as a
// chroot would, and returns the path in the tree it names; a missing
// component ends the walk there.
func resolveIn(root, p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0 && hops < 64; {
		next := filepath.Join(cur, parts[0])
		parts = parts[1:]
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			cur = next
			continue
		}
		hops++
		if filepath.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(strings.Trim(target, "/"), "/"), parts...)
	}
	return cur
}

// diffTree makes a fresh tree from a tree.txt description.
func diffTree(t *testing.T, desc string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// A later line for the same path replaces the earlier one, so that a
	// scenario can override a file of the base tree.
	lines := map[string]int{}
	var order []string
	for _, l := range strings.Split("/ dir 0755 0:0\n"+desc, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		p, _, _ := strings.Cut(l, " ")
		if i, ok := lines[p]; ok {
			order[i] = l
			continue
		}
		lines[p] = len(order)
		order = append(order, l)
	}
	if err := makeTree(root, "", strings.Join(order, "\n")); err != nil {
		t.Fatal(err)
	}
	return root
}

// runTool runs the commands with the tree for {root} and SOURCE_DATE_EPOCH
// set as kiln sets it for the stage. The tree gets the host's /proc while
// they run, in a mount namespace of their own, as osbuild's build root has
// it: useradd --root chroots into the tree and sets the modes of the
// directories it copies from /etc/skel through /proc/self/fd (without
// /proc they stay 0700 and empty).
func runTool(root string, cmds [][]string) (err error) {
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o555); err != nil {
		return fmt.Errorf("the tree must not have /proc: %w", err)
	}
	defer func() {
		if rerr := os.Remove(proc); err == nil {
			err = rerr
		}
	}()
	for _, c := range cmds {
		args := []string{"--mount", "--", "sh", "-c", `mount --bind /proc "$0/proc" && exec "$@"`, root}
		for _, a := range c {
			args = append(args, strings.ReplaceAll(a, "{root}", root))
		}
		cmd := exec.Command("unshare", args...)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.Itoa(goldenEpoch), "LC_ALL=C")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args[5:], " "), err, out.Bytes())
		}
	}
	return nil
}

// unitTree lays the units of the systemd scenarios in dir (the unit
// directory of the tree, /usr/lib/systemd/system or /lib/systemd/system).
func unitTree(dir string) string {
	units := []struct{ name, text string }{
		{"multi-user.target", `[Unit]\nDescription=Multi-User\n`},
		{"graphical.target", `[Unit]\nDescription=Graphical\n`},
		{"getty.target", `[Unit]\nDescription=Gettys\n`},
		{"sockets.target", `[Unit]\nDescription=Sockets\n`},
		{"foo.service", `[Unit]\nDescription=Foo\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=foo-alias.service\n`},
		{"req.service", `[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=graphical.target\nWantedBy=multi-user.target\n`},
		{"app.service", `[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlso=app.socket\n`},
		{"app.socket", `[Socket]\nListenStream=/run/app.sock\n[Install]\nWantedBy=sockets.target\n`},
		{"getty@.service", `[Service]\nExecStart=/sbin/agetty %I\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n`},
		{"spec@.service", `[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=%p-alt@.service\n`},
		{"specd@.service", `[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=%p-alt@.service\nDefaultInstance=x\n`},
		{"static.service", `[Service]\nExecStart=/bin/true\n`},
	}
	var b strings.Builder
	for _, u := range units {
		fmt.Fprintf(&b, "%s/%s file 0644 0:0 \"%s\"\n", dir, u.name, u.text)
	}
	return b.String()
}

// mergedUsr is a merged-/usr tree (/lib -> usr/lib) with the units in
// /usr/lib/systemd/system.
var mergedUsr = `
/etc dir 0755 0:0
/etc/systemd dir 0755 0:0
/etc/systemd/system dir 0755 0:0
/usr dir 0755 0:0
/usr/lib dir 0755 0:0
/usr/lib/systemd dir 0755 0:0
/usr/lib/systemd/system dir 0755 0:0
/lib symlink -> usr/lib
` + unitTree("/usr/lib/systemd/system")

// splitUsr keeps the units in a real /lib/systemd/system.
var splitUsr = `
/etc dir 0755 0:0
/etc/systemd dir 0755 0:0
/etc/systemd/system dir 0755 0:0
/usr dir 0755 0:0
/usr/lib dir 0755 0:0
/lib dir 0755 0:0
/lib/systemd dir 0755 0:0
/lib/systemd/system dir 0755 0:0
` + unitTree("/lib/systemd/system")

// enabledFoo is foo.service, getty@tty1 and getty@ttyS0 enabled as
// systemctl leaves them on a merged-/usr tree.
const enabledFoo = `
/etc/systemd/system/multi-user.target.wants dir 0755 0:0
/etc/systemd/system/multi-user.target.wants/foo.service symlink -> /usr/lib/systemd/system/foo.service
/etc/systemd/system/foo-alias.service symlink -> /usr/lib/systemd/system/foo.service
/etc/systemd/system/getty.target.wants dir 0755 0:0
/etc/systemd/system/getty.target.wants/getty@tty1.service symlink -> /usr/lib/systemd/system/getty@.service
/etc/systemd/system/getty.target.wants/getty@ttyS0.service symlink -> /usr/lib/systemd/system/getty@.service
`

// systemctl runs `systemctl --root TREE verb units...` as osbuild's stage.
func systemctl(verb string, units ...string) []string {
	return append([]string{"systemctl", "--root={root}", verb}, units...)
}

func systemdCase(name, tree, options string, tool ...[]string) diffCase {
	return diffCase{name: name, tree: tree, stage: "org.osbuild.systemd", options: options, tool: tool}
}

var systemdCases = []diffCase{
	systemdCase("enable-wantedby-alias", mergedUsr, `{"enabled_services": ["foo.service"]}`, systemctl("enable", "foo.service")),
	systemdCase("enable-requiredby", mergedUsr, `{"enabled_services": ["req.service"]}`, systemctl("enable", "req.service")),
	systemdCase("enable-also", mergedUsr, `{"enabled_services": ["app.service"]}`, systemctl("enable", "app.service")),
	systemdCase("enable-template-default-instance", mergedUsr, `{"enabled_services": ["getty@.service"]}`, systemctl("enable", "getty@.service")),
	systemdCase("enable-instance", mergedUsr, `{"enabled_services": ["getty@ttyS0.service"]}`, systemctl("enable", "getty@ttyS0.service")),
	systemdCase("enable-template-alias-specifier", mergedUsr, `{"enabled_services": ["spec@one.service"]}`, systemctl("enable", "spec@one.service")),
	systemdCase("enable-template-alias-default-instance", mergedUsr, `{"enabled_services": ["specd@.service"]}`, systemctl("enable", "specd@.service")),
	systemdCase("disable-instance-alias", mergedUsr, `{"enabled_services": ["spec@one.service", "spec@two.service"], "disabled_services": ["spec@one.service"]}`,
		systemctl("enable", "spec@one.service"), systemctl("enable", "spec@two.service"), systemctl("disable", "spec@one.service")),
	systemdCase("enable-static", mergedUsr, `{"enabled_services": ["static.service"]}`, systemctl("enable", "static.service")),
	systemdCase("enable-missing", mergedUsr, `{"enabled_services": ["nope.service"]}`, systemctl("enable", "nope.service")),
	systemdCase("enable-split-usr", splitUsr, `{"enabled_services": ["foo.service", "getty@ttyS0.service"]}`,
		systemctl("enable", "foo.service"), systemctl("enable", "getty@ttyS0.service")),
	systemdCase("enable-etc-unit", mergedUsr+`/etc/systemd/system/local.service file 0644 0:0 "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"`,
		`{"enabled_services": ["local.service"]}`, systemctl("enable", "local.service")),
	systemdCase("disable", mergedUsr+enabledFoo, `{"disabled_services": ["foo.service"]}`, systemctl("disable", "foo.service")),
	systemdCase("disable-template", mergedUsr+enabledFoo, `{"disabled_services": ["getty@.service"]}`, systemctl("disable", "getty@.service")),
	systemdCase("disable-instance", mergedUsr+enabledFoo, `{"disabled_services": ["getty@ttyS0.service"]}`, systemctl("disable", "getty@ttyS0.service")),
	systemdCase("disable-split-usr", splitUsr+strings.ReplaceAll(enabledFoo, "/usr/lib/", "/lib/"), `{"disabled_services": ["foo.service"]}`,
		systemctl("disable", "foo.service")),
	systemdCase("disable-masked", mergedUsr+enabledFoo+"/etc/systemd/system/req.service symlink -> /dev/null\n"+
		"/etc/systemd/system/multi-user.target.wants/req.service symlink -> /usr/lib/systemd/system/req.service\n",
		`{"disabled_services": ["req.service"]}`, systemctl("disable", "req.service")),
	systemdCase("disable-missing", mergedUsr+enabledFoo+"/etc/systemd/system/multi-user.target.wants/gone.service symlink -> /usr/lib/systemd/system/gone.service\n",
		`{"disabled_services": ["gone.service"]}`, systemctl("disable", "gone.service")),
	systemdCase("disable-also", mergedUsr, `{"enabled_services": ["app.service"], "disabled_services": ["app.service"]}`,
		systemctl("enable", "app.service"), systemctl("disable", "app.service")),
	systemdCase("enable-then-disable", mergedUsr, `{"enabled_services": ["foo.service", "app.service"], "disabled_services": ["app.service"]}`,
		systemctl("enable", "foo.service"), systemctl("enable", "app.service"), systemctl("disable", "app.service")),
	systemdCase("mask", mergedUsr+enabledFoo, `{"masked_services": ["foo.service"]}`, systemctl("mask", "foo.service")),
	systemdCase("mask-missing", mergedUsr, `{"masked_services": ["nope.service"]}`, systemctl("mask", "nope.service")),
	systemdCase("default-target", mergedUsr, `{"default_target": "graphical.target"}`, systemctl("set-default", "graphical.target")),
	systemdCase("default-target-split-usr", splitUsr, `{"default_target": "multi-user.target"}`, systemctl("set-default", "multi-user.target")),

	// Names without a suffix, as half of osbuild's generated manifests
	// give them (issue 11 item 12); osbuild runs systemctl VERB -- NAME.
	systemdCase("enable-no-suffix", mergedUsr, `{"enabled_services": ["foo", "getty@ttyS0"]}`,
		systemctl("enable", "--", "foo"), systemctl("enable", "--", "getty@ttyS0")),
	systemdCase("enable-template-no-suffix", mergedUsr, `{"enabled_services": ["getty@"]}`, systemctl("enable", "--", "getty@")),
	systemdCase("enable-dotted-no-suffix", mergedUsr+`/usr/lib/systemd/system/foo.bar.service file 0644 0:0 "[Install]\nWantedBy=multi-user.target\n"`,
		`{"enabled_services": ["foo.bar"]}`, systemctl("enable", "--", "foo.bar")),
	systemdCase("disable-no-suffix", mergedUsr+enabledFoo, `{"disabled_services": ["foo"]}`, systemctl("disable", "--", "foo")),
	systemdCase("mask-no-suffix", mergedUsr, `{"masked_services": ["static"]}`, systemctl("mask", "--", "static")),
	systemdCase("default-target-no-suffix", mergedUsr, `{"default_target": "graphical"}`, systemctl("set-default", "graphical")),

	// Disabling through an alias disables the real unit (issue 11 item
	// 12): the alias enable made, a vendor alias, an instance's alias.
	systemdCase("disable-alias", mergedUsr+enabledFoo, `{"disabled_services": ["foo-alias.service"]}`, systemctl("disable", "--", "foo-alias.service")),
	systemdCase("disable-alias-no-suffix", mergedUsr+enabledFoo, `{"disabled_services": ["foo-alias"]}`, systemctl("disable", "--", "foo-alias")),
	systemdCase("disable-vendor-alias", mergedUsr+enabledFoo+vendorAlias, `{"disabled_services": ["foo-vendor"]}`, systemctl("disable", "--", "foo-vendor")),
	systemdCase("enable-vendor-alias", mergedUsr+vendorAlias, `{"enabled_services": ["foo-vendor.service"]}`, systemctl("enable", "--", "foo-vendor.service")),
	systemdCase("disable-instance-through-alias", mergedUsr, `{"enabled_services": ["spec@one", "spec@two"], "disabled_services": ["spec-alt@one"]}`,
		systemctl("enable", "--", "spec@one"), systemctl("enable", "--", "spec@two"), systemctl("disable", "--", "spec-alt@one")),
	// Enabling through the alias link enable made is refused by both.
	systemdCase("enable-linked-alias", mergedUsr+enabledFoo, `{"enabled_services": ["foo-alias"]}`, systemctl("enable", "--", "foo-alias")),
}

// vendorAlias is an alias the package ships: a symlink next to the unit.
const vendorAlias = "/usr/lib/systemd/system/foo-vendor.service symlink -> foo.service\n"

// TestDifferentialSystemd compares the systemd stage with systemctl --root.
func TestDifferentialSystemd(t *testing.T) {
	needTools(t, "systemctl", "unshare")
	runDiffCases(t, systemdCases)
}
