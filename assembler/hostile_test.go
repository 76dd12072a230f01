package assembler

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/runtime/schema"
)

// schemaViolations validates opts against the assembler's schema as
// planning does and returns the violations' paths.
func schemaViolations(t *testing.T, a Assembler, opts string) []string {
	t.Helper()
	s, err := schema.Compile("test:"+a.Name(), a.Schema())
	if err != nil {
		t.Fatal(err)
	}
	canon, err := schema.Canonical([]byte(opts))
	if err != nil {
		t.Fatalf("%s: %v", opts, err)
	}
	vs, err := s.Validate(canon)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, v := range vs {
		paths = append(paths, v.PathString("options")+": "+v.Message)
	}
	return paths
}

// TestHostileOptionInjection: every option that reaches a host tool's argv
// (qemu-img -o, mkfs.ext4 -U/-E/-L/-d, xz, debugfs, e2fsck, and the output
// path they all get) is refused both by the schema, when the manifest is
// planned, and by the assembler's own check before any tool runs, and no
// host file is written. Before the fix, qcow2_compat
// "1.1,data_file=HOST,data_file_raw=on" made qemu-img write the disk over
// HOST (issue 10 item 1).
func TestHostileOptionInjection(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "e2fsck", "qemu-img")
	host := filepath.Join(t.TempDir(), "host-file")
	qemuBase := `"filename": "d", "size": 33554432, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + testUUID + `"`
	gptBase := `"filename": "d", "size": 33554432, "format": "raw", "pttype": "gpt", "ptuuid": "d209c89e-ea5e-4fbd-b161-b461cce297e0"`
	fsOf := func(extra string) string {
		return `{` + gptBase + `, "partitions": [{"filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "mountpoint": "/"` + extra + `}}]}`
	}
	partOf := func(extra string) string {
		return `{` + gptBase + `, "partitions": [{` + extra + `}]}`
	}
	rawfsOf := func(filename, uuid string, size int64) string {
		b, _ := json.Marshal(map[string]any{"filename": filename, "root_fs_uuid": uuid, "size": size})
		return string(b)
	}
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	for _, c := range []struct {
		name, assembler, opts, option string
	}{
		{"qcow2_compat data_file", "org.osbuild.qemu", `{"format": "qcow2", ` + qemuBase + `, "qcow2_compat": "1.1,data_file=` + host + `,data_file_raw=on"}`, "qcow2_compat"},
		{"qcow2_compat backing_file", "org.osbuild.qemu", `{"format": "qcow2", ` + qemuBase + `, "qcow2_compat": "1.1,backing_file=` + host + `"}`, "qcow2_compat"},
		{"qcow2_compat unknown", "org.osbuild.qemu", `{"format": "qcow2", ` + qemuBase + `, "qcow2_compat": "v3"}`, "qcow2_compat"},
		{"vmdk_subformat extra", "org.osbuild.qemu", `{"format": "vmdk", ` + qemuBase + `, "vmdk_subformat": "monolithicFlat,backing_file=` + host + `"}`, "vmdk_subformat"},
		{"qemu filename option", "org.osbuild.qemu", `{"format": "qcow2", "filename": "-o", "size": 33554432, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + testUUID + `"}`, "filename"},
		{"qemu filename protocol", "org.osbuild.qemu", `{"format": "qcow2", "filename": "nbd:host:1", "size": 33554432, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + testUUID + `"}`, "filename"},
		{"qemu filename comma", "org.osbuild.qemu", `{"format": "qcow2", "filename": "a,b", "size": 33554432, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + testUUID + `"}`, "filename"},
		{"root_fs_uuid hash_seed", "org.osbuild.qemu", `{"format": "raw", "filename": "d", "size": 33554432, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + testUUID + `,root_owner=7:7"}`, "root_fs_uuid"},
		{"ptuuid", "org.osbuild.qemu", `{"format": "raw", "filename": "d", "size": 33554432, "ptuuid": "0x1,x", "root_fs_uuid": "` + testUUID + `"}`, "ptuuid"},
		{"qemu size past the limit", "org.osbuild.qemu", `{"format": "raw", "filename": "d", "size": 4611686018427387904, "ptuuid": "0x0badcafe", "root_fs_uuid": "` + testUUID + `"}`, "size"},
		{"filesystem uuid", "org.osbuild.qemu", `{` + gptBase + `, "partitions": [{"filesystem": {"type": "ext4", "uuid": "` + testUUID + `,lazy_itable_init=0", "mountpoint": "/"}}]}`, "partitions[0].filesystem.uuid"},
		{"label option", "org.osbuild.qemu", fsOf(`, "label": "-E"`), "partitions[0].filesystem.label"},
		{"label too long", "org.osbuild.qemu", fsOf(`, "label": "a-label-of-17-chr"`), "partitions[0].filesystem.label"},
		{"label line break", "org.osbuild.qemu", fsOf(`, "label": "root\n"`), "partitions[0].filesystem.label"},
		{"mountpoint line break", "org.osbuild.qemu", `{` + gptBase + `, "partitions": [{"filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "mountpoint": "/a\nb"}}]}`, "partitions[0].filesystem.mountpoint"},
		{"vfat serial option", "org.osbuild.qemu", `{` + gptBase + `, "partitions": [{"filesystem": {"type": "vfat", "mountpoint": "/", "uuid": "-C"}}]}`, "partitions[0].filesystem.uuid"},
		{"vfat serial extra", "org.osbuild.qemu", `{` + gptBase + `, "partitions": [{"filesystem": {"type": "vfat", "mountpoint": "/", "uuid": "7B77-95E7 -C"}}]}`, "partitions[0].filesystem.uuid"},
		{"vfat label option", "org.osbuild.qemu", `{` + gptBase + `, "partitions": [{"filesystem": {"type": "vfat", "mountpoint": "/", "uuid": "7B77-95E7", "label": "-i"}}]}`, "partitions[0].filesystem.label"},
		{"bootloader platform path", "org.osbuild.qemu", `{"format": "raw", "bootloader": {"type": "grub2", "platform": "../../../tmp"}, ` + qemuBase + `}`, "bootloader.platform"},
		{"bootloader modules", "org.osbuild.qemu", `{"format": "raw", "bootloader": {"type": "grub2", "modules": ["/etc/shadow"]}, ` + qemuBase + `}`, "bootloader.modules"},
		{"partition name", "org.osbuild.qemu", partOf(`"name": "x\"; rm"`), "partitions[0].name"},
		{"partition name too long", "org.osbuild.qemu", partOf(`"name": "` + strings.Repeat("n", 37) + `"`), "partitions[0].name"},
		{"partition type", "org.osbuild.qemu", partOf(`"type": "83,x"`), "partitions[0].type"},
		{"partition uuid", "org.osbuild.qemu", partOf(`"uuid": "-x"`), "partitions[0].uuid"},
		{"partition start overflow", "org.osbuild.qemu", partOf(`"start": 9223372036854775807`), "partitions[0].start"},
		{"partition size overflow", "org.osbuild.qemu", partOf(`"size": 9223372036854775807`), "partitions[0].size"},
		{"rawfs filename option", "org.osbuild.rawfs", rawfsOf("-F", testUUID, 1<<24), "filename"},
		{"rawfs filename dot", "org.osbuild.rawfs", rawfsOf("..", testUUID, 1<<24), "filename"},
		{"rawfs uuid hash_seed", "org.osbuild.rawfs", rawfsOf("i", testUUID+",root_owner=7:7", 1<<24), "root_fs_uuid"},
		{"rawfs uuid letters", "org.osbuild.rawfs", rawfsOf("i", "zzzzzzzz-cf88-45b8-84e8-64990759f39d", 1<<24), "root_fs_uuid"},
		{"rawfs size past the limit", "org.osbuild.rawfs", rawfsOf("i", testUUID, 1<<62), "size"},
		{"tar filename", "org.osbuild.tar", `{"filename": "-x.tar"}`, "filename"},
		{"tar filename line break", "org.osbuild.tar", `{"filename": ` + quote("x\n.tar") + `}`, "filename"},
		{"oci architecture", "org.osbuild.oci-archive", `{"filename": "i.tar", "architecture": "amd64\n"}`, "architecture"},
		{"oci tag", "org.osbuild.oci-archive", `{"filename": "i.tar", "architecture": "amd64", "tag": "-x"}`, "tag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, _ := lookup(c.assembler)
			vs := schemaViolations(t, a, c.opts)
			if len(vs) == 0 {
				t.Errorf("the schema accepts %s", c.opts)
			}
			tree := t.TempDir()
			if err := os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			err := a.Assemble(t.Context(), Input{Tree: tree, Output: out, Options: json.RawMessage(c.opts), Epoch: testEpoch})
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), `option "`+c.option+`"`) {
				t.Errorf("Assemble: %v, want an error naming option %q", err, c.option)
			}
			if _, err := os.Lstat(host); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the host file %s was written (%v)", host, err)
				os.Remove(host)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("output holds %d entries after a refused option", len(entries))
			}
		})
	}
}

// TestHostileOptionsAccepted: the patterns still take what manifests use.
func TestHostileOptionsAccepted(t *testing.T) {
	qemu, _ := lookup("org.osbuild.qemu")
	for _, opts := range []string{
		`{"format": "qcow2", "filename": "disk.qcow2", "size": 33554432, "ptuuid": "0x14fc63d2", "root_fs_uuid": "` + testUUID + `", "qcow2_compat": "0.10"}`,
		`{"format": "qcow2", "filename": "disk.qcow2", "size": 33554432, "ptuuid": "0x14fc63d2", "root_fs_uuid": "` + testUUID + `", "qcow2_compat": "1.1"}`,
		`{"format": "vmdk", "filename": "disk.vmdk", "size": 33554432, "ptuuid": "14FC63D2", "root_fs_uuid": "` + testUUID + `", "vmdk_subformat": "streamOptimized"}`,
		`{"format": "raw", "filename": "fedora-39_x86.64+test@1.img", "size": 33554432, "pttype": "gpt", "ptuuid": "D209C89E-EA5E-4FBD-B161-B461CCE297E0",
		  "partitions": [{"size": 2048, "type": "21686148-6449-6E6F-744E-656564454649", "name": "BIOS boot partition"},
		    {"type": "0xef", "name": "EFI-SYSTEM", "filesystem": {"type": "ext4", "uuid": "` + testUUID + `", "label": "EFI System_1.0", "mountpoint": "/boot/efi"}}]}`,
	} {
		if vs := schemaViolations(t, qemu, opts); len(vs) != 0 {
			t.Errorf("the schema refuses %s: %v", opts, vs)
		}
		if _, err := (qemuAssembler{}).options(Input{Options: json.RawMessage(opts)}); err != nil {
			t.Errorf("options(%s): %v", opts, err)
		}
	}
}

// TestHostileNamesInExt4: names holding CR, LF, quotes, backslashes and
// spaces get their clamped mtime, their mode and owner, and the epoch as
// atime and ctime. Before the fix the debugfs script ended the command at
// the CR, so "a\rb" kept the source's (later than the epoch) mtime and the
// build still succeeded, and a name with LF was refused (issue 10 item 1).
// Read back through a loop mount, whose names need no parsing.
func TestHostileNamesInExt4(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "e2fsck")
	if os.Geteuid() != 0 {
		t.Skip("needs root to loop-mount the image")
	}
	tree := t.TempDir()
	type file struct {
		name      string
		mode      uint32
		uid, gid  int
		mtime     int64
		wantMtime int64
		isDir     bool
	}
	later, earlier := int64(testEpoch+86400), int64(testEpoch-86400)
	files := []file{
		{name: "a\rb", mode: 0o640, uid: 12, gid: 34, mtime: later, wantMtime: testEpoch},
		{name: "x\ny", mode: 0o600, uid: 56, gid: 78, mtime: later, wantMtime: testEpoch},
		{name: `q"uote`, mode: 0o755, uid: 1, gid: 2, mtime: earlier, wantMtime: earlier},
		{name: `""`, mode: 0o644, uid: 3, gid: 4, mtime: later, wantMtime: testEpoch},
		{name: `back\slash`, mode: 0o444, uid: 5, gid: 6, mtime: later, wantMtime: testEpoch},
		{name: " sp ace ", mode: 0o4755, uid: 0, gid: 0, mtime: later, wantMtime: testEpoch},
		{name: "d\r\nir", mode: 0o750, uid: 7, gid: 8, mtime: later, wantMtime: testEpoch, isDir: true},
		{name: "d\r\nir/in\rner \"q\"\n", mode: 0o604, uid: 9, gid: 10, mtime: later, wantMtime: testEpoch},
		{name: "d\r\nir/#comment", mode: 0o600, uid: 11, gid: 12, mtime: later, wantMtime: testEpoch},
		{name: "-F", mode: 0o600, uid: 13, gid: 14, mtime: later, wantMtime: testEpoch},
	}
	for _, f := range files {
		p := filepath.Join(tree, f.name)
		var err error
		if f.isDir {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte(f.name), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Modes, owners and times after every entry exists: creating a file
	// changes its directory's mtime.
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		p := filepath.Join(tree, f.name)
		if err := os.Lchown(p, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		ts := []unix.Timespec{{Sec: later}, {Sec: f.mtime}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	image := runRawfs(t, tree, `{"filename": "root.ext4", "root_fs_uuid": "`+testUUID+`", "size": 16777216}`)
	fsck(t, image, 0)
	mnt := t.TempDir()
	if out, err := runCmd("mount", "-o", "loop,ro", "--", image, mnt); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	defer runCmd("umount", mnt)
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, f.name), &st); err != nil {
			t.Errorf("%q: %v", f.name, err)
			continue
		}
		perm := f.mode
		if st.Mode&0o7777 != perm || int(st.Uid) != f.uid || int(st.Gid) != f.gid {
			t.Errorf("%q: mode %o owner %d:%d, want %o %d:%d", f.name, st.Mode&0o7777, st.Uid, st.Gid, perm, f.uid, f.gid)
		}
		if st.Mtim.Sec != f.wantMtime || st.Atim.Sec != testEpoch || st.Ctim.Sec != testEpoch {
			t.Errorf("%q: mtime %d atime %d ctime %d, want %d %d %d", f.name, st.Mtim.Sec, st.Atim.Sec, st.Ctim.Sec, f.wantMtime, testEpoch, testEpoch)
		}
	}
}

// TestDebugfsErrorsFail: debugfs exits 0 whatever its commands report;
// a command it cannot carry out must fail the build. Before the fix the
// error went to stderr and the assembler returned success.
func TestDebugfsErrorsFail(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs")
	dir := t.TempDir()
	image := filepath.Join(dir, "fs.img")
	if err := os.WriteFile(image, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd("mkfs.ext4", "-q", "-F", "--", image); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	env := []string{"DEBUGFS_PAGER=__none__"}
	if _, err := runDebugfs(t.Context(), env, filepath.Join(dir, "ok"), image, true, []string{"sif <2> mtime @5", "sif <11> mtime @5"}); err != nil {
		t.Fatalf("good commands: %v", err)
	}
	for _, cmds := range [][]string{
		{"sif <2> mtime @5", "sif <99999> mtime @5"},
		{"sif /missing mtime @5"},
		{"sif <2> nosuchfield 1"},
		{"nosuchcommand"},
	} {
		_, err := runDebugfs(t.Context(), env, filepath.Join(dir, "bad"), image, true, cmds)
		if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "debugfs reports errors") {
			t.Errorf("%q: %v, want debugfs's error", cmds, err)
		}
	}
}

// TestParseListings: debugfs's ls -p output is read by '/'-separated
// fields, so names with line breaks and the echoed commands cannot be
// mistaken for entries.
func TestParseListings(t *testing.T) {
	out := "debugfs: ls -p <2>\n/2/040755/0/0/.//\n/2/040755/0/0/..//\n/12/100644/0/0/x\ny/3/\n" +
		"/13/100644/0/0/debugfs: ls -p <3>/0/\n\n" +
		"debugfs: ls -p <14>\n/14/040755/0/0/.//\n/2/040755/0/0/..//\n/15/100600/1/1/a\rb/1/\n\n"
	got, err := parseListings([]byte(out), []string{"ls -p <2>", "ls -p <14>"})
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]uint64{{"x\ny": 12, "debugfs: ls -p <3>": 13}, {"a\rb": 15}}
	if len(got) != 2 || len(got[0]) != 2 || got[0]["x\ny"] != 12 || got[0]["debugfs: ls -p <3>"] != 13 || len(got[1]) != 1 || got[1]["a\rb"] != 15 {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{
		"debugfs: ls -p <2>\n/2/040755/0/0/.//",              // truncated
		"debugfs: ls -p <2>\n/x/040755/0/0/.//\n",            // bad number
		"debugfs: ls -p <9>\n",                               // another command
		"debugfs: ls -p <2>\n\ndebugfs: ls -p <14>\nextra\n", // trailing output
	} {
		if _, err := parseListings([]byte(bad), []string{"ls -p <2>", "ls -p <14>"}[:1+strings.Count(bad, "<14>")]); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func runCmd(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

type qemuAssembler = qemu

// sparseBombDir returns a directory on a filesystem that holds a 4 EiB
// sparse file (tmpfs does, ext4 stops at 16 TiB): the test's temporary
// directory if it can, else a directory in /dev/shm, else a tmpfs mounted
// for the test (root only).
func sparseBombDir(t *testing.T) string {
	t.Helper()
	can := func(dir string) bool {
		p := filepath.Join(dir, ".probe")
		defer os.Remove(p)
		f, err := os.Create(p)
		if err != nil {
			return false
		}
		defer f.Close()
		return f.Truncate(4<<60) == nil
	}
	if dir := t.TempDir(); can(dir) {
		return dir
	}
	if dir, err := os.MkdirTemp("/dev/shm", "kiln-test-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(dir) })
		if can(dir) {
			return dir
		}
	}
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"); err == nil {
			t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
			return dir
		}
	}
	t.Skip("no filesystem here holds a 4 EiB sparse file (tmpfs does)")
	return ""
}

// sparseBombTree is a tree holding what org.osbuild.truncate to 4E makes
// of a file: a 4 EiB file that is one hole after its few bytes of data;
// with tail, also data one mebibyte from its end.
func sparseBombTree(t *testing.T, tail bool) (tree, bomb string) {
	tree = sparseBombDir(t)
	if err := os.WriteFile(filepath.Join(tree, "small"), []byte("small\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bomb = filepath.Join(tree, "bomb")
	f, err := os.Create(bomb)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if tail {
		if _, err := f.WriteAt([]byte("tail"), 4<<60-1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(4 << 60); err != nil {
		t.Fatal(err)
	}
	return tree, bomb
}

// TestRawfsSparseBomb: a 4 EiB sparse file does not fit in an ext4
// filesystem. Before the fix mkfs.ext4 -d copied it without a word and
// rawfs returned success with a filesystem e2fsck calls damaged (issue 10
// item 7); now the error names the file.
func TestRawfsSparseBomb(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "e2fsck")
	tree, bomb := sparseBombTree(t, false)
	a, _ := lookup("org.osbuild.rawfs")
	err := a.Assemble(t.Context(), Input{Tree: tree, Output: t.TempDir(), Epoch: testEpoch,
		Options: json.RawMessage(`{"filename": "x", "root_fs_uuid": "` + testUUID + `", "size": 16777216}`)})
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), bomb) || !strings.Contains(err.Error(), "more than a file in this ext4 filesystem can hold") {
		t.Errorf("Assemble: %v, want an error naming %s", err, bomb)
	}
}

// TestRawfsTooSmall: a tree larger than the image fails, saying so and
// naming the size option.
func TestRawfsTooSmall(t *testing.T) {
	requireTools(t, "mkfs.ext4", "debugfs", "e2fsck")
	tree := t.TempDir()
	data := make([]byte, 12<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	if err := os.WriteFile(filepath.Join(tree, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := lookup("org.osbuild.rawfs")
	err := a.Assemble(t.Context(), Input{Tree: tree, Output: t.TempDir(), Epoch: testEpoch,
		Options: json.RawMessage(`{"filename": "x", "root_fs_uuid": "` + testUUID + `", "size": 8388608}`)})
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), `option "size": the tree does not fit in a filesystem of 8388608 bytes`) {
		t.Errorf("Assemble: %v, want the tree does not fit", err)
	}
}

// TestE2fsckFindsDamage: the check every ext4 image goes through fails on
// the damaged filesystem mkfs.ext4 -d makes of a 4 EiB sparse file (and
// exits 0 for).
func TestE2fsckFindsDamage(t *testing.T) {
	requireTools(t, "mkfs.ext4", "e2fsck")
	tree, _ := sparseBombTree(t, false)
	image := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(image, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd("mkfs.ext4", "-q", "-F", "-d", tree, "--", image); err != nil {
		t.Fatalf("mkfs.ext4 fails (the check is then not needed for this case): %v\n%s", err, out)
	}
	if err := e2fsck(t.Context(), "test", image); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("e2fsck: %v, want the filesystem called damaged", err)
	}
	clean := filepath.Join(t.TempDir(), "clean.img")
	os.WriteFile(clean, nil, 0o644)
	os.Truncate(clean, 16<<20)
	if out, err := runCmd("mkfs.ext4", "-q", "-F", "--", clean); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if err := e2fsck(t.Context(), "test", clean); err != nil {
		t.Errorf("e2fsck on a clean filesystem: %v", err)
	}
}

// TestExampleOptionsAccepted: the examples' assembler options pass both
// checks.
func TestExampleOptionsAccepted(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.json")
	if len(files) == 0 {
		t.Skip("no examples")
	}
	checked := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Pipeline struct {
				Assembler *struct {
					Name    string
					Options json.RawMessage
				}
			}
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Pipeline.Assembler == nil {
			continue
		}
		a, ok := lookup(m.Pipeline.Assembler.Name)
		if !ok {
			continue
		}
		checked++
		if vs := schemaViolations(t, a, string(m.Pipeline.Assembler.Options)); len(vs) != 0 {
			t.Errorf("%s: the schema refuses the options: %v", file, vs)
		}
		if a.Name() == "org.osbuild.qemu" {
			if _, err := (qemu{}).options(Input{Options: m.Pipeline.Assembler.Options}); err != nil {
				t.Errorf("%s: %v", file, err)
			}
		}
	}
	if checked < 3 {
		t.Errorf("checked %d examples' assemblers, want tar, oci and qemu", checked)
	}
}
