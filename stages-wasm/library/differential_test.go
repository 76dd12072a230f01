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
	case "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/.pwd.lock":
		return true
	}
	return false
}

// accountsTree is a small Fedora-like base: system accounts, a user 1000,
// login.defs as Fedora ships it (CREATE_HOME yes, as osbuild relies on)
// and a skeleton with a file, a directory and a symlink.
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
/home dir 0755 0:0
/home/alice dir 0700 1000:1000
`

// fedoraDefs is the part of Fedora's login.defs that useradd reads.
const fedoraDefs = `/etc/login.defs file 0644 0:0 "MAIL_DIR /var/spool/mail\nUMASK 022\nHOME_MODE 0700\nPASS_MAX_DAYS 99999\nPASS_MIN_DAYS 0\nPASS_WARN_AGE 7\nUID_MIN 1000\nUID_MAX 60000\nSYS_UID_MIN 201\nSYS_UID_MAX 999\nGID_MIN 1000\nGID_MAX 60000\nSYS_GID_MIN 201\nSYS_GID_MAX 999\nCREATE_HOME yes\nUSERGROUPS_ENAB yes\nENCRYPT_METHOD SHA512\n"
`

// debianDefs is what Debian 12's login.defs sets that useradd reads.
const debianDefs = `/etc/login.defs file 0644 0:0 "MAIL_DIR /var/mail\nPASS_MAX_DAYS 99999\nPASS_MIN_DAYS 0\nPASS_WARN_AGE 7\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\nUMASK 022\nUSERGROUPS_ENAB yes\nENCRYPT_METHOD SHA512\n"`

func accounts(extra ...string) string {
	return accountsTree + fedoraDefs + strings.Join(extra, "\n")
}

// useradd is the command osbuild's users stage runs for a new user.
func useradd(args ...string) []string {
	return append([]string{"useradd", "--root", "{root}"}, args...)
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
		tool:    [][]string{useradd("--uid", "1500", "bob")}},
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
	{name: "user-uid-taken", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"uid": 1000}}}`,
		tool:    [][]string{useradd("--uid", "1000", "bob")}},
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
		tool:    [][]string{useradd("bob"), useradd("--uid", "1001", "carl")}},
	{name: "user-key", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"bob": {"key": "ssh-ed25519 AAAA bob@a"}}}`,
		tool:    [][]string{useradd("bob"), addKey("/home/bob", "1001:1001", "ssh-ed25519 AAAA bob@a")}},
	{name: "modify", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"groups": ["wheel"], "description": "Alice A", "shell": "/bin/zsh", "password": "$6$x$y"}}}`,
		tool: [][]string{{"usermod", "--root", "{root}", "--groups", "wheel", "--comment", "Alice A",
			"--shell", "/bin/zsh", "--password", "$6$x$y", "alice"}}},
	{name: "modify-home", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"home": "/srv/alice"}}}`,
		tool:    [][]string{{"usermod", "--root", "{root}", "--home", "/srv/alice", "alice"}}},
	{name: "modify-key", tree: accounts(), stage: "org.osbuild.users",
		options: `{"users": {"alice": {"key": "ssh-rsa BBBB alice@b"}}}`,
		tool:    [][]string{addKey("/home/alice", "1000:1000", "ssh-rsa BBBB alice@b")}},
}

// TestDifferentialAccounts compares the groups and users stages with
// shadow-utils' groupadd, useradd and usermod.
func TestDifferentialAccounts(t *testing.T) {
	needTools(t, "useradd", "groupadd", "usermod", "unshare")
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

var debPackage = map[string]string{"useradd": "passwd", "groupadd": "passwd", "usermod": "passwd", "systemctl": "systemd", "unshare": "util-linux"}

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
			res, kilnErr := e.Run(context.Background(), engine.Stage{
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
			for p := range toolAfter {
				if diffIgnored(p) {
					delete(toolAfter, p)
				}
			}
			if d := diffTrees(toolAfter, kilnAfter); d != "" {
				t.Errorf("kiln's tree differs from the tool's (+ only kiln, - only the tool, ~ kiln's version):\n%s\nthe tool changed:\n%s",
					d, diffTrees(before, toolAfter))
			}
		})
	}
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
