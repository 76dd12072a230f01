// Command hostile is a stage that tries to break out of its tree, one attack
// per run: hostile ATTACK OUTSIDE, where OUTSIDE is the absolute host path of
// a directory beside the tree holding "secret". The test that runs it checks
// the host side; this program only tries, and prints what each try gave, so
// a failing test shows which call got through. It exits 0 unless an attack
// name is unknown: being refused is the expected outcome, and so is an
// operation that lands inside the tree.
//
// Built by hostfs's tests with GOOS=wasip1 GOARCH=wasm; the testdata
// directory keeps it out of ./... on the host.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

var attacks = map[string]func(outside string){
	"abs-symlink":       absSymlink,
	"rel-symlink":       relSymlink,
	"dotdot":            dotdot,
	"planted-links":     plantedLinks,
	"swap-race":         swapRace,
	"hardlink":          hardlink,
	"rename-out":        renameOut,
	"rename-in":         renameIn,
	"devices":           devices,
	"proc":              proc,
	"xattr":             xattr,
	"chown":             chown,
	"chmod":             chmod,
	"utimens":           utimens,
	"huge-path":         hugePath,
	"nul-path":          nulPath,
	"ro-escape-read":    roEscapeRead,
	"ro-write":          roWrite,
	"dangling-create":   danglingCreate,
	"mkdir-mknod":       mkdirMknod,
	"remove":            remove,
	"readdir":           readdir,
	"loops":             loops,
	"raw-wasi":          rawWASI,
	"mount-prefix":      mountPrefix,
	"trailing-slash":    trailingSlash,
	"symlink-overwrite": symlinkOverwrite,
	"abi":               abi,
	"abi-nomounts":      abiNoMounts,
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: hostile ATTACK OUTSIDE")
		os.Exit(2)
	}
	attack, ok := attacks[os.Args[1]]
	if !ok {
		var names []string
		for n := range attacks {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "unknown attack %q; have %s\n", os.Args[1], strings.Join(names, " "))
		os.Exit(2)
	}
	attack(os.Args[2])
}

// report prints one try. Content read is printed whole, so a leak of the
// host's sentinel is visible to the test in stdout.
func report(op, path string, err error, data ...string) {
	var e syscall.Errno
	res := "ok"
	if errors.As(err, &e) {
		res = fmt.Sprintf("errno %d (%v)", uint32(e), e)
	} else if err != nil {
		res = err.Error()
	}
	fmt.Printf("%s %q: %s %s\n", op, path, res, strings.Join(data, ""))
}

func read(p string) {
	data, err := os.ReadFile(p)
	report("read", p, err, string(data))
}

func write(p string) {
	report("write", p, os.WriteFile(p, []byte("pwned\n"), 0o666))
}

func absSymlink(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	read("/esc/secret")
	write("/esc/secret")
	write("/esc/pwned")
	report("symlink", "/root-esc", os.Symlink("/", "/root-esc"))
	read("/root-esc" + outside + "/secret")
	write("/root-esc" + outside + "/pwned")
}

func relSymlink(outside string) {
	report("symlink", "/rel", os.Symlink("../outside/secret", "/rel"))
	read("/rel")
	write("/rel")
	report("symlink", "/up", os.Symlink("../../../../../../..", "/up"))
	read("/up" + outside + "/secret")
	write("/up" + outside + "/pwned")
	report("mkdir", "/a/b", os.MkdirAll("/a/b", 0o755))
	report("symlink", "/a/b/up", os.Symlink("../../../outside", "/a/b/up"))
	read("/a/b/up/secret")
}

func dotdot(outside string) {
	for _, p := range []string{
		"/../../../../../.." + outside + "/secret",
		"../../../../.." + outside + "/secret",
		"/etc/../../.." + outside + "/secret",
	} {
		read(p)
		write(p)
		_, err := sdk.Lstat(p)
		report("sdk.lstat", p, err)
	}
	report("chdir", "/dir", os.Chdir("/dir"))
	read("../../../outside/secret")
	_, err := sdk.Lstat("../../../outside/secret")
	report("sdk.lstat", "../../../outside/secret", err)
}

// plantedLinks uses symlinks the test put in the tree before the stage ran.
func plantedLinks(outside string) {
	read("/planted-abs/secret")
	read("/planted-up" + outside + "/secret")
	read("/planted-rel")
	write("/planted-rel")
	write("/planted-abs/pwned")
}

// swapRace reads through /link while the host swaps it between /dir in the
// tree and the outside directory.
func swapRace(outside string) {
	counts := map[string]int{}
	for range 2000 {
		data, err := os.ReadFile("/link/secret")
		switch {
		case err != nil:
			counts["err"]++
		case string(data) == "tree secret\n":
			counts["tree"]++
		default:
			report("read", "/link/secret", err, string(data))
		}
		if err := sdk.Chmod("/link/secret", 0o777); err == nil {
			counts["chmod"]++
		}
		_ = sdk.SetXattr("/link/secret", "user.pwned", []byte("x"), 0)
		_ = os.WriteFile("/link/pwned", []byte("pwned\n"), 0o666)
		_ = os.Remove("/link/pwned")
	}
	fmt.Printf("swap-race outcomes: %v\n", counts)
}

func hardlink(outside string) {
	report("link", outside+"/secret", os.Link(outside+"/secret", "/stolen"))
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("link", "/esc/secret", os.Link("/esc/secret", "/stolen2"))
	report("link", "/esc", os.Link("/esc", "/esc-hard"))
	read("/esc-hard/secret")
	report("symlink", "/rel", os.Symlink("../outside/secret", "/rel"))
	report("link", "/rel", os.Link("/rel", "/rel-hard"))
	read("/rel-hard")
	write("/rel-hard")
	report("link", "/etc/hostname", os.Link("/etc/hostname", "/esc/planted"))
}

func renameOut(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("rename", "/etc/hostname", os.Rename("/etc/hostname", outside+"/moved"))
	report("rename", "/etc/hostname", os.Rename("/etc/hostname", "/esc/moved"))
	report("rename", "/dir", os.Rename("/dir", "/esc/dir"))
	report("rename", "/dir", os.Rename("/dir", "/../../../outside/dir"))
	report("rename", "/", os.Rename("/", "/esc/root"))
}

func renameIn(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("rename", "/esc/secret", os.Rename("/esc/secret", "/got"))
	report("rename", outside+"/secret", os.Rename(outside+"/secret", "/got2"))
	report("rename", "/esc", os.Rename("/esc", "/esc2")) // moves the link only
	read("/got")
}

// devices makes device nodes, allowed, and tries to open them, refused. The
// test also planted /dev/zero (c 1 5) and /dev/host-disk (b 8 0).
func devices(string) {
	report("mkdir", "/dev", os.MkdirAll("/dev", 0o755))
	for _, d := range []struct {
		path         string
		mode         fs.FileMode
		major, minor uint32
	}{
		{"/dev/null", fs.ModeDevice | fs.ModeCharDevice | 0o666, 1, 3},
		{"/dev/urandom", fs.ModeDevice | fs.ModeCharDevice | 0o666, 1, 9},
		{"/dev/mem", fs.ModeDevice | fs.ModeCharDevice | 0o640, 1, 1},
		{"/dev/sda", fs.ModeDevice | 0o660, 8, 0},
	} {
		report("sdk.mknod", d.path, sdk.Mknod(d.path, d.mode, d.major, d.minor))
	}
	for _, p := range []string{"/dev/null", "/dev/urandom", "/dev/mem", "/dev/sda", "/dev/zero", "/dev/host-disk"} {
		f, err := os.Open(p)
		if err == nil {
			buf := make([]byte, 16)
			n, rerr := f.Read(buf)
			report("read-device", p, rerr, fmt.Sprintf("%d bytes %x", n, buf[:n]))
			f.Close()
		} else {
			report("open", p, err)
		}
		report("open-write", p, os.WriteFile(p, []byte("x"), 0o666))
	}
	report("symlink", "/rnd", os.Symlink("/dev/urandom", "/rnd"))
	read("/rnd")
}

func proc(outside string) {
	for _, p := range []string{
		"/proc/self/root" + outside + "/secret",
		"/proc/1/root" + outside + "/secret",
		"/proc/self/cwd/secret",
		"/proc/self/fd/3" + outside + "/secret",
		"/proc/self/environ",
		"/proc/self/mounts",
	} {
		read(p)
		write(p)
	}
	report("symlink", "/p", os.Symlink("/proc/self/root", "/p"))
	read("/p" + outside + "/secret")
	_, err := sdk.Lstat("/proc/self/root" + outside + "/secret")
	report("sdk.lstat", "/proc/self/root", err)
}

func xattr(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("symlink", "/rel", os.Symlink("../outside/secret", "/rel"))
	for _, p := range []string{"/esc/secret", "/rel", outside + "/secret", "/../../outside/secret"} {
		report("sdk.setxattr", p, sdk.SetXattr(p, "user.pwned", []byte("x"), 0))
		report("sdk.removexattr", p, sdk.RemoveXattr(p, "user.kiln"))
		v, err := sdk.GetXattr(p, "user.kiln")
		report("sdk.getxattr", p, err, string(v))
		names, err := sdk.ListXattr(p)
		report("sdk.listxattr", p, err, strings.Join(names, ","))
	}
}

func chown(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("symlink", "/rel", os.Symlink("../outside/secret", "/rel"))
	for _, p := range []string{"/esc/secret", "/esc", "/rel", outside + "/secret"} {
		report("sdk.lchown", p, sdk.Lchown(p, 4242, 4242))
		report("os.lchown", p, os.Lchown(p, 4242, 4242))
	}
}

func chmod(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("symlink", "/rel", os.Symlink("../outside/secret", "/rel"))
	for _, p := range []string{"/esc/secret", "/esc", "/rel", outside + "/secret"} {
		report("sdk.chmod", p, sdk.Chmod(p, 0o4777))
		report("os.chmod", p, os.Chmod(p, 0o777))
	}
}

func utimens(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("symlink", "/rel", os.Symlink("../outside/secret", "/rel"))
	t := time.Unix(42, 42)
	for _, p := range []string{"/esc/secret", "/rel", outside + "/secret"} {
		report("sdk.utimens", p, sdk.Utimens(p, t, t))
		report("os.chtimes", p, os.Chtimes(p, t, t))
	}
}

func hugePath(outside string) {
	long := "/" + strings.Repeat("a/", 3000) + "secret"
	read(long)
	write(long)
	_, err := sdk.Lstat(long)
	report("sdk.lstat", "long", err)
	report("sdk.chmod", "long", sdk.Chmod(long, 0o777))
	report("symlink", "long target", os.Symlink(strings.Repeat("../", 2000)+outside, "/longlink"))
	read("/longlink/secret")
	deep := strings.Repeat("../", 1300) + outside[1:] + "/secret"
	read(deep)
	_, err = sdk.Lstat(deep)
	report("sdk.lstat", "deep", err)
	name := "/" + strings.Repeat("n", 300)
	write(name)
}

func nulPath(outside string) {
	for _, p := range []string{
		"/etc/hostname\x00" + outside + "/secret",
		outside + "/secret\x00",
		"/esc\x00/../../outside/secret",
	} {
		read(p)
		write(p)
		_, err := sdk.Lstat(p)
		report("sdk.lstat", p, err)
		report("sdk.chmod", p, sdk.Chmod(p, 0o777))
		report("sdk.setxattr", p, sdk.SetXattr(p, "user.x", nil, 0))
	}
	report("sdk.setxattr name", "/etc/hostname", sdk.SetXattr("/etc/hostname", "user.x\x00"+outside, nil, 0))
	report("symlink nul target", "/nul", os.Symlink(outside+"\x00/x", "/nul"))
}

// roEscapeRead reads through links planted in the read-only sources mount.
func roEscapeRead(outside string) {
	read("/run/kiln/sources/esc/secret")
	read("/run/kiln/sources/up" + outside + "/secret")
	read("/run/kiln/sources/rel")
	read("/run/kiln/sources/../../../../outside/secret")
	for _, p := range []string{"/run/kiln/sources/esc/secret", "/run/kiln/sources/rel"} {
		v, err := sdk.GetXattr(p, "user.kiln")
		report("sdk.getxattr", p, err, string(v))
		st, err := sdk.Lstat(p)
		report("sdk.lstat", p, err, fmt.Sprint(st.Size))
	}
}

func roWrite(outside string) {
	const src = "/run/kiln/sources"
	write(src + "/file")
	write(src + "/new")
	write(src + "/esc/secret")
	report("mkdir", src+"/d", os.Mkdir(src+"/d", 0o755))
	report("symlink", src+"/l", os.Symlink(outside, src+"/l"))
	report("remove", src+"/file", os.Remove(src+"/file"))
	report("rename", src+"/file", os.Rename(src+"/file", src+"/file2"))
	report("rename", src+"/file", os.Rename(src+"/file", "/stolen"))
	report("link", src+"/file", os.Link(src+"/file", src+"/hl"))
	report("chtimes", src+"/file", os.Chtimes(src+"/file", time.Unix(1, 1), time.Unix(1, 1)))
	report("sdk.chmod", src+"/file", sdk.Chmod(src+"/file", 0o777))
	report("sdk.lchown", src+"/file", sdk.Lchown(src+"/file", 1, 1))
	report("sdk.mknod", src+"/fifo", sdk.Mknod(src+"/fifo", fs.ModeNamedPipe|0o644, 0, 0))
	report("sdk.setxattr", src+"/file", sdk.SetXattr(src+"/file", "user.x", []byte("y"), 0))
	report("sdk.removexattr", src+"/file", sdk.RemoveXattr(src+"/file", "user.kiln"))
	report("sdk.utimens", src+"/file", sdk.Utimens(src+"/file", time.Unix(1, 1), time.Unix(1, 1)))
	f, err := os.OpenFile(src+"/file", os.O_RDWR, 0)
	report("open rdwr", src+"/file", err)
	if err == nil {
		f.Close()
	}
}

func danglingCreate(outside string) {
	report("symlink", "/d-abs", os.Symlink(outside+"/pwned", "/d-abs"))
	write("/d-abs")
	report("symlink", "/d-rel", os.Symlink("../../../../../pwned-rel", "/d-rel"))
	write("/d-rel") // lands as /pwned-rel in the tree
	report("symlink", "/d-up", os.Symlink("../outside/pwned", "/d-up"))
	write("/d-up")
	f, err := os.OpenFile("/d-abs", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
	report("create excl", "/d-abs", err)
	if err == nil {
		f.Close()
	}
}

func mkdirMknod(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("mkdir", "/esc/newdir", os.Mkdir("/esc/newdir", 0o777))
	report("mkdir", outside+"/newdir", os.Mkdir(outside+"/newdir", 0o777))
	report("sdk.mknod", "/esc/fifo", sdk.Mknod("/esc/fifo", fs.ModeNamedPipe|0o666, 0, 0))
	report("sdk.mknod", "/esc/null", sdk.Mknod("/esc/null", fs.ModeDevice|fs.ModeCharDevice|0o666, 1, 3))
	report("sdk.mknod", outside+"/f", sdk.Mknod(outside+"/f", 0o666, 0, 0))
}

func remove(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("remove", "/esc/secret", os.Remove("/esc/secret"))
	report("remove", outside+"/secret", os.Remove(outside+"/secret"))
	report("removeall", "/esc/", os.RemoveAll("/esc/"))
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	report("removeall", "/", os.RemoveAll("/"))
}

func readdir(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	for _, p := range []string{"/esc", outside, "/..", "/../.."} {
		entries, err := os.ReadDir(p)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		report("readdir", p, err, strings.Join(names, ","))
	}
}

func loops(outside string) {
	report("symlink", "/l1", os.Symlink("/l2", "/l1"))
	report("symlink", "/l2", os.Symlink("/l1", "/l2"))
	read("/l1")
	write("/l1")
	_, err := sdk.Lstat("/l1/x")
	report("sdk.lstat", "/l1/x", err)
	for i := range 45 {
		_ = os.Symlink(fmt.Sprintf("/c%d", i+1), fmt.Sprintf("/c%d", i))
	}
	_ = os.Symlink(outside, "/c45")
	read("/c0/secret")
	read("/c10/secret")
}

//go:wasmimport wasi_snapshot_preview1 path_open
func pathOpen(fd int32, dirflags uint32, path unsafe.Pointer, pathLen uint32, oflags uint32, rightsBase, rightsInheriting uint64, fdflags uint32, newFd unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 path_link
func pathLink(oldFd int32, oldFlags uint32, oldPath unsafe.Pointer, oldLen uint32, newFd int32, newPath unsafe.Pointer, newLen uint32) uint32

// rawWASI calls wazero's WASI functions directly, with paths Go's os would
// have cleaned first.
func rawWASI(outside string) {
	const preopen = 3 // the first preopen: "/"
	const follow = 1
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	for _, p := range []string{
		"../../../../outside/secret",
		outside + "/secret",
		"esc/secret",
		"esc/../../outside/secret",
		"./../outside/secret",
		"esc/secret/",
	} {
		for _, oflags := range []uint32{0, 1 /* creat */, 8 /* trunc */} {
			var fd int32
			b := []byte(p)
			rc := pathOpen(preopen, follow, unsafe.Pointer(&b[0]), uint32(len(b)), oflags, ^uint64(0), ^uint64(0), 0, unsafe.Pointer(&fd))
			report(fmt.Sprintf("path_open oflags=%d", oflags), p, errnoOf(rc))
		}
	}
	oldp, newp := []byte("esc/secret"), []byte("stolen")
	rc := pathLink(preopen, follow, unsafe.Pointer(&oldp[0]), uint32(len(oldp)), preopen, unsafe.Pointer(&newp[0]), uint32(len(newp)))
	report("path_link follow", "esc/secret", errnoOf(rc))
	oldp = []byte("../outside/secret")
	rc = pathLink(preopen, follow, unsafe.Pointer(&oldp[0]), uint32(len(oldp)), preopen, unsafe.Pointer(&newp[0]), uint32(len(newp)))
	report("path_link dotdot", string(oldp), errnoOf(rc))
}

func errnoOf(rc uint32) error {
	if rc == 0 {
		return nil
	}
	return syscall.Errno(rc)
}

// mountPrefix climbs out of the read-only mount into the tree's namespace
// and beyond, and uses prefixes that only look like the mount.
func mountPrefix(outside string) {
	for _, p := range []string{
		"/run/kiln/sources/../../../.." + outside + "/secret",
		"/run/kiln/sourcesX/../../.." + outside + "/secret",
		"/run/kiln/build/../sources/esc/secret",
	} {
		read(p)
		_, err := sdk.Lstat(p)
		report("sdk.lstat", p, err)
		report("sdk.chmod", p, sdk.Chmod(p, 0o777))
	}
}

func trailingSlash(outside string) {
	report("symlink", "/esc", os.Symlink(outside, "/esc"))
	read("/esc/")
	read("/esc/secret/")
	write("/esc/")
	_, err := sdk.Lstat("/esc/")
	report("sdk.lstat", "/esc/", err)
	report("sdk.chmod", "/esc/", sdk.Chmod("/esc/", 0o777))
	report("sdk.lchown", "/esc/", sdk.Lchown("/esc/", 1, 1))
}

// symlinkOverwrite replaces a planted directory symlink target name with a
// link out and then writes "through" it.
func symlinkOverwrite(outside string) {
	report("remove", "/dir", os.RemoveAll("/dir"))
	report("symlink", "/dir", os.Symlink(outside, "/dir"))
	write("/dir/secret")
	write("/dir/new")
	report("sdk.setxattr", "/dir/secret", sdk.SetXattr("/dir/secret", "user.x", []byte("y"), 0))
	report("symlink", "/etc/shadow", os.Symlink(outside+"/secret", "/etc/shadow"))
	write("/etc/shadow")
	report("sdk.chmod", "/etc/shadow", sdk.Chmod("/etc/shadow", 0o777))
}
