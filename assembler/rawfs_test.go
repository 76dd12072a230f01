package assembler

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/store/storetest"
	"github.com/kilnbuild/kiln/store/treesum"
)

const testUUID = "9c6ae55b-cf88-45b8-84e8-64990759f39d"

func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (installed by .ci/run)", tool)
		}
	}
}

// richTree is storetest.RichTree in a temporary directory that, for a
// user other than root, can be removed despite its read-only directory.
func richTree(t *testing.T) string {
	tree := t.TempDir()
	storetest.RichTree(t, tree)
	t.Cleanup(func() { makeWritable(tree) })
	return tree
}

func makeWritable(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o755)
		}
		return nil
	})
}

func runRawfs(t *testing.T, tree, opts string) string {
	t.Helper()
	return runImage(t, "org.osbuild.rawfs", tree, opts)
}

// runImage runs an image assembler and returns its one output file; any
// other entry would be scratch left behind.
func runImage(t *testing.T, name, tree, opts string) string {
	t.Helper()
	out := t.TempDir()
	a, _ := lookup(name)
	if err := a.Assemble(t.Context(), Input{Tree: tree, Output: out, Options: json.RawMessage(opts), Epoch: testEpoch}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Fatalf("output holds %d entries, want only the image (scratch left behind?)", len(entries))
	}
	return filepath.Join(out, entries[0].Name())
}

// fsck runs e2fsck read-only and forced on the filesystem at offset bytes
// into image (e2fsck reads an offset from the device name's io options).
func fsck(t *testing.T, image string, offset int64) {
	t.Helper()
	dev := image
	if offset != 0 {
		dev = fmt.Sprintf("%s?offset=%d", image, offset)
	}
	if out, err := exec.Command("e2fsck", "-fn", dev).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn %s: %v\n%s", dev, err, out)
	}
}

// debugfs runs one read-only debugfs request and returns its output.
func debugfs(t *testing.T, dev, request string) string {
	t.Helper()
	cmd := exec.Command("debugfs", "-R", request, dev)
	cmd.Env = append(os.Environ(), "TZ=UTC") // dates in its output are local time
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v", request, err)
	}
	return string(out)
}

// checkFiles reads files back with debugfs: contents, owners, modes,
// xattrs, links, devices and clamped times.
func checkFiles(t *testing.T, dev string) {
	t.Helper()
	checks := []struct{ request, want string }{
		{"cat /etc/hostname", "kiln\n"},
		{"cat /ro/file", "read only\n"},
		{"stat /etc/hostname", "user.kiln.test (5) = \"value\""},
		{"stat /etc/hostname", " mtime: 0x6553f100:00000000"},
		{"stat /etc/hostname", " ctime: 0x6553f100:00000000"},
		{"stat /usr/bin/su", "Links: 2"},
		{"stat /usr/bin/su", "Mode:  04755"},
		{"stat /tmp", "Mode:  01777"},
		{"stat /etc/localtime", `Fast link dest: "/usr/share/zoneinfo/UTC"`},
	}
	if storetest.CanChown() {
		checks = append(checks, []struct{ request, want string }{
			{"stat /etc/shadow", "Group:    42"},
			{"stat /usr/share/big", "User:  1000   Group:  1000"},
		}...)
	}
	if storetest.CanMknod() {
		checks = append(checks, []struct{ request, want string }{
			{"stat /dev/null", "Type: character special"},
			{"stat /dev/null", "Device major/minor number: 01:03"},
			{"stat /dev/sda", "Type: block special"},
			{"stat /etc/localtime", `trusted.kiln (4) = "link"`},
		}...)
	}
	for _, c := range checks {
		if got := debugfs(t, dev, c.request); !strings.Contains(got, c.want) {
			t.Errorf("debugfs %q on %s: no %q in\n%s", c.request, dev, c.want, got)
		}
	}
}

// TestRawfs checks the image with e2fsck and debugfs and, as root, mounts
// it and compares the whole tree's treesum with the source's.
func TestRawfs(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "e2fsck")
	tree := richTree(t)
	// Fedora's / is 0555; mkfs.ext4 -d alone would make it 0755.
	if err := os.Chmod(tree, 0o555); err != nil {
		t.Fatal(err)
	}
	image := runRawfs(t, tree, `{"filename": "root.ext4", "root_fs_uuid": "`+testUUID+`", "size": 67108864}`)
	if st, err := os.Stat(image); err != nil || st.Size() != 64<<20 {
		t.Fatalf("image: %v %v", st, err)
	}
	fsck(t, image, 0)
	checkFiles(t, image)
	if got := debugfs(t, image, "stat /"); !strings.Contains(got, "Mode:  0555") {
		t.Errorf("the root directory lost its mode:\n%s", got)
	}
	// The superblock's stamps are the epoch (in a test in one second
	// two runs would not show they follow the clock).
	stats := debugfs(t, image, "stats")
	for _, want := range []string{
		"Filesystem UUID:          " + testUUID, "Directory Hash Seed:      " + testUUID,
		"Filesystem created:       Tue Nov 14 22:13:20 2023", "Last write time:          Tue Nov 14 22:13:20 2023",
	} {
		if !strings.Contains(stats, want) {
			t.Errorf("superblock has no %q:\n%s", want, stats)
		}
	}
	t.Run("mounted", func(t *testing.T) {
		requireRoot(t)
		compareMounted(t, image, 0, tree)
	})
}

// compareMounted loop-mounts the filesystem at offset in image and checks
// that, lost+found aside, it holds the tree want (by treesum).
func compareMounted(t *testing.T, image string, offset int64, want string) {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("loop,offset=%d", offset), image, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount here: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	if err := os.Remove(filepath.Join(mnt, "lost+found")); err != nil {
		t.Fatal(err)
	}
	got, err1 := treesum.Sum(t.Context(), mnt)
	sum, err2 := treesum.Sum(t.Context(), want)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if got != sum {
		t.Errorf("mounted filesystem differs from the tree:\ntree:\n%s\nmounted:\n%s",
			strings.Join(storetest.Describe(t, want), "\n"), strings.Join(storetest.Describe(t, mnt), "\n"))
	}
}
