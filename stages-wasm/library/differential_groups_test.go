package library

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
)

// groupsBase is a tree as Fedora's setup package leaves it, shortened, with
// gshadow owned by a shadow group (Debian's 0640 root:42) so that the
// backups are seen to keep owner and mode.
const groupsBase = `
/etc dir 0755 0:0
/etc/passwd file 0644 0:0 "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n"
/etc/group file 0644 0:0 "root:x:0:\nbin:x:1:\nwheel:x:10:\nshadow:x:42:\nusers:x:100:\n"
/etc/gshadow file 0640 0:42 "root:::\nbin:::\nwheel:::\nshadow:::\nusers:::\n"
/etc/login.defs file 0644 0:0 "GID_MIN 1000\nGID_MAX 60000\n"
`

// groupsDiffCase is a groups stage call and the groupadd runs osbuild's
// stage makes for it (one per group, in the options' order, which here is
// also the name order kiln uses). writes is how many of those runs change
// the files: with one, the backups hold the files as found, times included.
type groupsDiffCase struct {
	name, tree, options string
	groupadd            [][]string
	writes              int
}

func groupadd(args ...string) []string {
	return append([]string{"groupadd", "--root", "{root}"}, args...)
}

var groupsDiffCases = []groupsDiffCase{
	{name: "new", tree: groupsBase, options: `{"groups": {"devs": {}}}`,
		groupadd: [][]string{groupadd("devs")}, writes: 1},
	{name: "gid", tree: groupsBase, options: `{"groups": {"devs": {"gid": 42042}}}`,
		groupadd: [][]string{groupadd("--gid", "42042", "devs")}, writes: 1},
	{name: "two-groups", tree: groupsBase, options: `{"groups": {"a-devs": {}, "b-ops": {"gid": 2000}}}`,
		groupadd: [][]string{groupadd("a-devs"), groupadd("--gid", "2000", "b-ops")}, writes: 2},
	{name: "force-existing-unchanged", tree: groupsBase, options: `{"force": true, "groups": {"wheel": {"gid": 1010}}}`,
		groupadd: [][]string{groupadd("--gid", "1010", "--force", "wheel")}, writes: 0},
	{name: "force-existing-and-new", tree: groupsBase, options: `{"force": true, "groups": {"newgroup": {}, "wheel": {"gid": 1010}}}`,
		groupadd: [][]string{groupadd("--force", "newgroup"), groupadd("--gid", "1010", "--force", "wheel")}, writes: 1},
	{name: "force-taken-gid", tree: groupsBase, options: `{"force": true, "groups": {"devs": {"gid": 10}}}`,
		groupadd: [][]string{groupadd("--gid", "10", "--force", "devs")}, writes: 1},
	{name: "stale-backups-replaced", tree: groupsBase + `/etc/group- file 0600 0:0 "stale\n"
/etc/gshadow- file 0600 0:0 "stale\n"`, options: `{"groups": {"devs": {}}}`,
		groupadd: [][]string{groupadd("devs")}, writes: 1},
	{name: "no-gshadow", tree: strings.Replace(groupsBase, "/etc/gshadow file 0640 0:42 \"root:::\\nbin:::\\nwheel:::\\nshadow:::\\nusers:::\\n\"\n", "", 1),
		options: `{"groups": {"devs": {}}}`, groupadd: [][]string{groupadd("devs")}, writes: 1},
	{name: "exists-refused", tree: groupsBase, options: `{"groups": {"wheel": {}}}`,
		groupadd: [][]string{groupadd("wheel")}},
}

// foundTime is the mtime the account files of a case's tree start with, so
// that a backup carrying the original's times is told from a new file.
var foundTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// TestDifferentialGroupsBackups compares org.osbuild.groups with
// shadow-utils' groupadd --root run as osbuild's stage runs it, backups
// included (issue 11 item 15): /etc/group- and /etc/gshadow- must hold
// what groupadd leaves there, with its owner and mode and, when the files
// were written once, the original's mtime.
func TestDifferentialGroupsBackups(t *testing.T) {
	needTools(t, "groupadd", "unshare")
	stages, _ := builtLibrary(t)
	st, ok := stages["org.osbuild.groups"]
	if !ok {
		t.Fatal("no stage org.osbuild.groups in the library")
	}
	e := newEngine(t)
	mod := engine.NewModule(st.Module)
	for _, c := range groupsDiffCases {
		t.Run(c.name, func(t *testing.T) {
			if err := validate(st, []byte(c.options)); err != nil {
				t.Fatalf("options: %v", err)
			}
			toolRoot, kilnRoot := diffTree(t, c.tree), diffTree(t, c.tree)
			for _, root := range []string{toolRoot, kilnRoot} {
				for _, f := range []string{"group", "gshadow"} {
					if err := os.Chtimes(filepath.Join(root, "etc", f), foundTime, foundTime); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			}
			toolErr := runTool(toolRoot, c.groupadd)
			id := sha256.Sum256([]byte("differential-groups\x00" + c.name))
			res, kilnErr := e.Run(context.Background(), engine.Invocation{
				Name: st.Name, ID: hex.EncodeToString(id[:]), Module: mod,
				Options: []byte(c.options), Tree: kilnRoot, Epoch: goldenEpoch,
			})
			switch {
			case toolErr != nil && kilnErr != nil:
				return
			case toolErr != nil:
				t.Fatalf("groupadd failed, the stage succeeded:\n%v", toolErr)
			case kilnErr != nil:
				t.Fatalf("groupadd succeeded, the stage failed: %v\nlog:\n%s", kilnErr, res.Log)
			}
			toolAfter, err := describeTree(toolRoot)
			if err != nil {
				t.Fatal(err)
			}
			kilnAfter, err := describeTree(kilnRoot)
			if err != nil {
				t.Fatal(err)
			}
			// lckpwdf(3)'s lock file is left by groupadd and not made by kiln
			// (docs/stages.md).
			delete(toolAfter, "/etc/.pwd.lock")
			if d := diffTrees(toolAfter, kilnAfter); d != "" {
				t.Errorf("kiln's tree differs from groupadd's (+ only kiln, - only groupadd, ~ kiln's version):\n%s", d)
			}
			for _, f := range []string{"/etc/group-", "/etc/gshadow-"} {
				tool, terr := os.Lstat(filepath.Join(toolRoot, f))
				kiln, kerr := os.Lstat(filepath.Join(kilnRoot, f))
				if terr != nil || kerr != nil {
					continue // absent in both, or reported by the tree comparison
				}
				if c.writes == 1 && (!tool.ModTime().Equal(foundTime) || !kiln.ModTime().Equal(foundTime)) {
					t.Errorf("%s mtime: groupadd %v, kiln %v; want the original's, %v", f, tool.ModTime().UTC(), kiln.ModTime().UTC(), foundTime)
				}
			}
		})
	}
}
